package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// TestFileCountLimit413: a publish that would leave a service with more
// than MaxFilesPerService files is 413 naming the limit (in files); one
// that replaces a file at the limit publishes.
func TestFileCountLimit413(t *testing.T) {
	e := newEnv(t)
	e.mustService("wide", nil)
	base := 0
	for i := 0; i < configsvc.MaxFilesPerService; i += configsvc.MaxFilesPerChangeset {
		var changes []map[string]any
		for j := i; j < min(i+configsvc.MaxFilesPerChangeset, configsvc.MaxFilesPerService); j++ {
			changes = append(changes, map[string]any{"file": fmt.Sprintf("f%04d.txt", j), "content": "x"})
		}
		e.must(http.StatusCreated, req{method: "POST", path: "/v1/services/wide/revisions", token: e.admin,
			body: map[string]any{"base_revision": base, "changes": changes}})
		base++
	}
	r := e.do(req{method: "PUT", path: "/v1/services/wide/files/one-more.txt", token: e.admin, body: "x", contentType: "text/plain"})
	var eb api.ErrorBody
	if r.status != http.StatusRequestEntityTooLarge || json.Unmarshal(r.body, &eb) != nil || eb.Error.Code != api.CodeTooLarge ||
		eb.Error.Details["unit"] != "files" || eb.Error.Details["limit"] != float64(configsvc.MaxFilesPerService) || !strings.Contains(eb.Error.Message, "file count") {
		t.Fatalf("a file over the limit = %d %s; want 413 naming the file count limit", r.status, r.body)
	}
	e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/wide/files/f0000.txt", token: e.admin, body: "y", contentType: "text/plain"})
}

package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// TestEffectiveConfig: one request returns what the service's SDK sees:
// its own files and its linked groups' files as group/file, each with the
// revision of its service or group, the revision that last changed it,
// its format and content; a reader of the service needs no grant on the
// groups.
func TestEffectiveConfig(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *testEnv) {
		st := e.store
		ctx := context.Background()
		seed(t, st, configsvc.Service("orders"), map[string]string{"db.yaml": "port: 1\n"})
		if _, err := st.Publish(ctx, configsvc.Service("orders"), configsvc.Changeset{Base: 1, Changes: []configsvc.Change{{File: "a.json", Content: []byte("{}")}}}); err != nil {
			t.Fatal(err)
		}
		seed(t, st, configsvc.Group("common"), map[string]string{"c.yaml": "x: 1\n"})
		if _, err := st.Publish(ctx, configsvc.Group("common"), configsvc.Changeset{Base: 1, Changes: []configsvc.Change{{File: "d.txt", Content: []byte("d")}}}); err != nil {
			t.Fatal(err)
		}
		seed(t, st, configsvc.Group("cache"), nil)
		seed(t, st, configsvc.Service("billing"), nil)
		for _, g := range []string{"common", "cache"} {
			e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/links/" + g, token: e.admin})
		}
		viewer := e.mustToken("viewer:orders")
		var got api.EffectiveConfig
		e.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders/effective", token: viewer}).json(t, &got)
		var lines []string
		for _, f := range got.Files {
			lines = append(lines, fmt.Sprintf("%s %s %s @%d/%d %s %q", f.Name, f.Ref, f.File, f.Revision, f.FileRevision, f.Format, f.Content))
		}
		want := []string{
			`a.json service/orders a.json @2/2 json "{}"`,
			`common/c.yaml group/common c.yaml @2/1 yaml "x: 1\n"`,
			`common/d.txt group/common d.txt @2/2 text "d"`,
			`db.yaml service/orders db.yaml @2/1 yaml "port: 1\n"`,
		}
		if got.Service != "orders" || got.Revision != 2 || strings.Join(got.Links, ",") != "cache,common" || strings.Join(lines, "\n") != strings.Join(want, "\n") {
			t.Fatalf("effective = %s %d %v\n%s\nwant\n%s", got.Service, got.Revision, got.Links, strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}
		checkUserMessage(t, e.do(req{method: "GET", path: "/v1/services/orders/effective", token: e.mustToken("viewer:billing")}), http.StatusForbidden)
		checkUserMessage(t, e.do(req{method: "GET", path: "/v1/services/nope/effective", token: e.admin}), http.StatusNotFound, "service nope does not exist")
		var empty api.EffectiveConfig
		e.must(http.StatusOK, req{method: "GET", path: "/v1/services/billing/effective", token: e.admin}).json(t, &empty)
		if empty.Revision != 0 || len(empty.Files) != 0 || empty.Files == nil || empty.Links == nil {
			t.Fatalf("effective of an empty service = %+v", empty)
		}
	})
}

package schema_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc/schema"
)

// TestOfficialSuite runs the vendored cases of the official JSON Schema
// Test Suite (testdata/suite) through a Checker: each case's data is a JSON
// config file beside a schema file holding the group's schema, and a case
// is valid exactly when the Checker reports no violation.
func TestOfficialSuite(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "suite", "draft2020-12", "*.json"))
	if err != nil || len(files) < 30 {
		t.Fatalf("vendored suite: %d files, %v", len(files), err)
	}
	c := schema.NewChecker(0)
	ctx := context.Background()
	cases := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var groups []struct {
			Description string          `json:"description"`
			Schema      json.RawMessage `json:"schema"`
			Tests       []struct {
				Description string          `json:"description"`
				Data        json.RawMessage `json:"data"`
				Valid       bool            `json:"valid"`
			} `json:"tests"`
		}
		if err := json.Unmarshal(b, &groups); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		keyword := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(keyword, func(t *testing.T) {
			for _, g := range groups {
				for _, tc := range g.Tests {
					cases++
					tree := memTree{"data.json": string(tc.Data), "data.json.schema.json": string(g.Schema)}
					vs, err := c.Check(ctx, tree, []string{"data.json"})
					if err != nil {
						t.Fatalf("%s / %s: %v", g.Description, tc.Description, err)
					}
					if got := len(vs) == 0; got != tc.Valid {
						t.Errorf("%s / %s: valid = %v, want %v (violations %v)", g.Description, tc.Description, got, tc.Valid, vs)
					}
				}
			}
		})
	}
	if cases < 500 {
		t.Fatalf("ran %d cases; the vendored suite holds more", cases)
	}
}

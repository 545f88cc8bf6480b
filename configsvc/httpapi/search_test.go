package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

func (e *testEnv) search(token, q string, limit int) api.SearchResults {
	e.t.Helper()
	v := url.Values{"q": {q}}
	if limit > 0 {
		v.Set("limit", fmt.Sprint(limit))
	}
	var out api.SearchResults
	e.must(http.StatusOK, req{method: "GET", path: "/v1/search?" + v.Encode(), token: token}).json(e.t.(*testing.T), &out)
	return out
}

func resultsText(r api.SearchResults) string {
	var lines []string
	for _, x := range r.Results {
		lines = append(lines, fmt.Sprintf("%s %s:%d %s", x.Ref, x.File, x.Line, x.Text))
	}
	return strings.Join(lines, "\n")
}

// TestSearchInsideConfigs: a literal, case-insensitive search over the
// head revisions of what the caller may read (a group through a service
// that links it), in a stable order, bounded by its limit.
func TestSearchInsideConfigs(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *testEnv) {
		st := e.store
		seed(t, st, configsvc.Service("orders"), map[string]string{"db.yaml": "host: DB-Primary\nport: 5432\n", "app.properties": "name=orders\r\ndb.host=db-primary\r\n"})
		seed(t, st, configsvc.Service("billing"), map[string]string{"db.yaml": "host: db-primary\n"})
		seed(t, st, configsvc.Group("common"), map[string]string{"c.yaml": "cache: db-primary-cache\n"})
		seed(t, st, configsvc.Group("other"), map[string]string{"o.yaml": "db-primary\n"})
		seed(t, st, configsvc.Service("empty"), nil)
		e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/links/common", token: e.admin})
		viewer := e.mustToken("viewer:orders")

		got := e.search(viewer, "DB-PRIMARY", 0)
		want := "service/orders app.properties:2 db.host=db-primary\n" +
			"service/orders db.yaml:1 host: DB-Primary\n" +
			"group/common c.yaml:1 cache: db-primary-cache"
		if resultsText(got) != want || got.Truncated {
			t.Fatalf("viewer:orders found\n%s\n(truncated %v), want\n%s", resultsText(got), got.Truncated, want)
		}
		if all := e.search(e.admin, "db-primary", 0); len(all.Results) != 5 || all.Truncated {
			t.Fatalf("admin found\n%s", resultsText(all))
		}
		if two := e.search(e.admin, "db-primary", 2); len(two.Results) != 2 || !two.Truncated {
			t.Fatalf("limit 2 found\n%s\n(truncated %v), want 2 and truncated", resultsText(two), two.Truncated)
		}
		if exact := e.search(e.admin, "db-primary", 5); exact.Truncated {
			t.Fatal("five results asked, five found: not truncated")
		}
		if dot := e.search(e.admin, "db.yaml", 0); len(dot.Results) != 0 {
			t.Fatalf("a '.' is literal; found\n%s", resultsText(dot))
		}
		if lit := e.search(e.admin, "b.h", 0); resultsText(lit) != "service/orders app.properties:2 db.host=db-primary" {
			t.Fatalf("literal b.h found\n%s", resultsText(lit))
		}

		// A published change is found at once; Unicode folds its case.
		e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/billing/files/note.txt", token: e.admin, body: "ÜBER alles\n" + strings.Repeat("x", 1000) + "needle" + strings.Repeat("y", 1000), contentType: "text/plain"})
		if u := e.search(e.admin, "über", 0); resultsText(u) != "service/billing note.txt:1 ÜBER alles" {
			t.Fatalf("über found\n%s", resultsText(u))
		}
		long := e.search(e.admin, "NEEDLE", 0)
		if len(long.Results) != 1 {
			t.Fatalf("needle found\n%s", resultsText(long))
		}
		if text := long.Results[0].Text; len(text) > SearchTextLen+2*len("…") || !strings.Contains(text, "needle") ||
			!strings.HasPrefix(text, "…") || !strings.HasSuffix(text, "…") {
			t.Fatalf("long line cut to %q (%d bytes)", text, len(text))
		}

		for _, bad := range []string{"", "?q=", "?q=" + strings.Repeat("a", MaxSearchQuery+1), "?q=a&limit=0", "?q=a&limit=201", "?q=%ff"} {
			checkUserMessage(t, e.do(req{method: "GET", path: "/v1/search" + bad, token: e.admin}), http.StatusBadRequest)
		}
	})
}

// TestSearchStopsAtItsByteBudget: a search does not read past its budget
// of content and says its answer is truncated.
func TestSearchStopsAtItsByteBudget(t *testing.T) {
	s := &Server{}
	sr := searcher{needle: []byte("x"), limit: 100, budget: 10}
	files := map[string][]byte{"a.txt": []byte("x\nx\n"), "b.txt": []byte("xxxxxxxx\n")}
	if sr.scan(s, configsvc.Service("orders"), files) || !sr.out.Truncated || len(sr.out.Results) != 2 || sr.scanned != 4 {
		t.Fatalf("scan past the budget: results %v, truncated %v, scanned %d", sr.out.Results, sr.out.Truncated, sr.scanned)
	}
}

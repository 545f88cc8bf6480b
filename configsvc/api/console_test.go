package api_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
)

// TestClientConsolePages: the client methods of the console's pages
// against a real server: summaries with a cursor, search, effective
// config, audit pages, and an error carrying its request id.
func TestClientConsolePages(t *testing.T) {
	e := newEnv(t, boltstore.Options{})
	ctx := ctxT(t)
	for _, name := range []string{"orders", "billing", "search"} {
		if _, _, err := e.c.Create(ctx, configsvc.Service(name)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.c.PutFile(ctx, configsvc.Service(name), "app.yaml", []byte("name: "+name+"\n")); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := e.c.Create(ctx, configsvc.Group("common")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.PutFile(ctx, configsvc.Group("common"), "c.yaml", []byte("x: 1\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Link(ctx, "orders", "common"); err != nil {
		t.Fatal(err)
	}

	first, err := e.c.ServiceSummaries(ctx, api.SummaryQuery{Limit: 2})
	if err != nil || len(first.Items) != 2 || first.Total != 3 || first.Next == "" || first.Items[0].Name != "billing" {
		t.Fatalf("first page = %+v, %v", first, err)
	}
	rest, err := e.c.ServiceSummaries(ctx, api.SummaryQuery{Limit: 2, Cursor: first.Next})
	if err != nil || len(rest.Items) != 1 || rest.Items[0].Name != "search" || rest.Next != "" {
		t.Fatalf("second page = %+v, %v", rest, err)
	}
	if f, err := e.c.ServiceSummaries(ctx, api.SummaryQuery{Q: "ord*", Sort: api.SortUpdatedNewest}); err != nil || len(f.Items) != 1 || f.Items[0].Links[0] != "common" {
		t.Fatalf("q=ord* = %+v, %v", f, err)
	}
	groups, err := e.c.GroupSummaries(ctx, api.SummaryQuery{})
	if err != nil || len(groups.Items) != 1 || groups.Items[0].Users[0] != "orders" {
		t.Fatalf("groups = %+v, %v", groups, err)
	}

	found, err := e.c.Search(ctx, "NAME: Orders", 10)
	if err != nil || len(found.Results) != 1 || found.Results[0].Ref != "service/orders" || found.Results[0].Line != 1 {
		t.Fatalf("search = %+v, %v", found, err)
	}
	eff, err := e.c.Effective(ctx, "orders")
	if err != nil || len(eff.Files) != 2 || eff.Files[1].Name != "common/c.yaml" || eff.Files[1].Content != "x: 1\n" {
		t.Fatalf("effective = %+v, %v", eff, err)
	}

	page, err := e.c.AuditPage(ctx, access.Query{Limit: 5, Action: "publish"}, "")
	if err != nil || len(page.Entries) != 4 || page.Next != "" {
		t.Fatalf("audit of publishes = %d entries, next %q, %v", len(page.Entries), page.Next, err)
	}
	page, err = e.c.AuditPage(ctx, access.Query{Limit: 3}, "")
	if err != nil || len(page.Entries) != 3 || page.Next == "" {
		t.Fatalf("audit page = %d entries, next %q, %v", len(page.Entries), page.Next, err)
	}
	more, err := e.c.AuditPage(ctx, access.Query{Limit: 3}, page.Next)
	if err != nil || len(more.Entries) != 3 || more.Entries[0].Seq >= page.Entries[2].Seq {
		t.Fatalf("next audit page = %+v, %v", more.Entries, err)
	}

	_, err = e.c.Effective(ctx, "nope")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || ae.RequestID == "" || ae.Message != "service nope does not exist; check the name (GET /v1/services lists them)" {
		t.Fatalf("effective of a missing service: %#v", err)
	}
}

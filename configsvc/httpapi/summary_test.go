package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// seed creates ref with files published in one revision, straight in the
// store (as another server would).
func seed(t testing.TB, st configsvc.Store, ref configsvc.Ref, files map[string]string) {
	t.Helper()
	ctx := context.Background()
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		return
	}
	cs := configsvc.Changeset{Author: "seed"}
	for name, content := range files {
		cs.Changes = append(cs.Changes, configsvc.Change{File: name, Content: []byte(content)})
	}
	slices.SortFunc(cs.Changes, func(a, b configsvc.Change) int { return strings.Compare(a.File, b.File) })
	if _, err := st.Publish(ctx, ref, cs); err != nil {
		t.Fatal(err)
	}
}

// register registers an instance straight in the store, as an SDK does.
func register(t testing.TB, st configsvc.Store, inst configsvc.Instance) configsvc.Lease {
	t.Helper()
	if inst.Addr == "" {
		inst.Addr = "127.0.0.1:1"
	}
	l, err := st.Register(context.Background(), inst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func (e *testEnv) services(token string, query string) api.ServiceSummaryList {
	e.t.Helper()
	var out api.ServiceSummaryList
	e.must(http.StatusOK, req{method: "GET", path: "/v1/summary/services" + query, token: token}).json(e.t.(*testing.T), &out)
	return out
}

func (e *testEnv) groups(token string, query string) api.GroupSummaryList {
	e.t.Helper()
	var out api.GroupSummaryList
	e.must(http.StatusOK, req{method: "GET", path: "/v1/summary/shared" + query, token: token}).json(e.t.(*testing.T), &out)
	return out
}

func serviceNames(l api.ServiceSummaryList) []string {
	var out []string
	for _, it := range l.Items {
		out = append(out, it.Name)
	}
	return out
}

// TestSummaryServices: one request answers the Services page: each
// service's head, links and instance counts (which add up and never
// contradict each other), filtered by name, glob, owner glob and rejected
// instances, sorted, and only what the caller may read.
func TestSummaryServices(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *testEnv) {
		st := e.store
		seed(t, st, configsvc.Group("common"), map[string]string{"c.yaml": "x: 1\n"})
		seed(t, st, configsvc.Service("team-a-orders"), map[string]string{"a.txt": "1", "b.txt": "2"})
		seed(t, st, configsvc.Service("team-a-billing"), map[string]string{"a.txt": "1"})
		seed(t, st, configsvc.Service("team-b-search"), nil)
		seed(t, st, configsvc.Service("payments"), map[string]string{"p.json": "{}"})
		if err := st.Link(context.Background(), "team-a-orders", "common"); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Publish(context.Background(), configsvc.Service("team-a-orders"), configsvc.Changeset{Base: 1, Author: "ann",
			Changes: []configsvc.Change{{File: "a.txt", Content: []byte("one")}, {File: "b.txt", Delete: true}, {File: "c.txt", Content: []byte("c")}}}); err != nil {
			t.Fatal(err)
		}
		for _, in := range []configsvc.Instance{
			{Service: "team-a-orders", ID: "o-1", Status: configsvc.StatusApplied, Revision: 2},
			{Service: "team-a-orders", ID: "o-2", Status: configsvc.StatusApplied, Revision: 1},
			{Service: "team-a-orders", ID: "o-3", Status: configsvc.StatusRejected, Revision: 1, Rejected: 2, Error: "bad"},
			{Service: "team-a-orders", ID: "o-4", Status: configsvc.StatusStarting},
			{Service: "payments", ID: "p-1", Status: configsvc.StatusApplied, Revision: 1},
		} {
			register(t, st, in)
		}

		all := e.services(e.admin, "")
		if got := serviceNames(all); !slices.Equal(got, []string{"payments", "team-a-billing", "team-a-orders", "team-b-search"}) || all.Total != 4 || all.Next != "" {
			t.Fatalf("all services = %v (total %d, next %q)", got, all.Total, all.Next)
		}
		orders := all.Items[2]
		want := api.ServiceSummary{Name: "team-a-orders", Revision: 2, Updated: orders.Updated, Author: "ann", Files: 2, Links: []string{"common"},
			Instances: api.InstanceCounts{Total: 4, Current: 1, Older: 1, Rejected: 1, Starting: 1}}
		if fmt.Sprint(orders) != fmt.Sprint(want) || !strings.HasSuffix(orders.Updated, "Z") {
			t.Fatalf("team-a-orders = %+v, want %+v", orders, want)
		}
		if s := all.Items[3]; s.Revision != 0 || s.Files != 0 || s.Links == nil || s.Instances.Total != 0 || s.Updated == "" {
			t.Fatalf("team-b-search (never published) = %+v", s)
		}

		for _, tc := range []struct {
			query string
			want  []string
		}{
			{"?q=team-a", []string{"team-a-billing", "team-a-orders"}},
			{"?q=ORDERS", []string{"team-a-orders"}},
			{"?q=team-?-*", []string{"team-a-billing", "team-a-orders", "team-b-search"}},
			{"?q=*ment*", []string{"payments"}},
			{"?owner=team-a-*", []string{"team-a-billing", "team-a-orders"}},
			{"?owner=team-b-*&q=search", []string{"team-b-search"}},
			{"?rejected=true", []string{"team-a-orders"}},
			{"?rejected=false", []string{"payments", "team-a-billing", "team-a-orders", "team-b-search"}},
			{"?sort=-updated", []string{"team-a-orders", "payments", "team-b-search", "team-a-billing"}},
			{"?sort=updated", []string{"team-a-billing", "team-b-search", "payments", "team-a-orders"}},
		} {
			t.Run(tc.query, func(t *testing.T) {
				got := e.withT(t).services(e.admin, tc.query)
				if names := serviceNames(got); !slices.Equal(names, tc.want) || got.Total != len(tc.want) {
					t.Fatalf("%s = %v (total %d), want %v", tc.query, names, got.Total, tc.want)
				}
			})
		}

		// A caller sees what it may read, and nothing else counts in total.
		viewer := e.mustToken("viewer:team-a-*")
		if got := e.services(viewer, ""); !slices.Equal(serviceNames(got), []string{"team-a-billing", "team-a-orders"}) || got.Total != 2 {
			t.Fatalf("viewer:team-a-* sees %v (total %d)", serviceNames(got), got.Total)
		}

		// Groups: users and their instances; readable through a link.
		groups := e.groups(viewer, "")
		if len(groups.Items) != 1 || groups.Total != 1 {
			t.Fatalf("viewer:team-a-* groups = %+v", groups)
		}
		g := groups.Items[0]
		if g.Name != "common" || g.Revision != 1 || g.Files != 1 || !slices.Equal(g.Users, []string{"team-a-orders"}) || g.Instances.Total != 4 || g.Instances.Rejected != 1 {
			t.Fatalf("common = %+v", g)
		}
		if got := e.groups(e.mustToken("viewer:payments"), ""); len(got.Items) != 0 || got.Total != 0 {
			t.Fatalf("viewer:payments groups = %+v, want none", got)
		}

		for _, bad := range []string{"?limit=0", "?limit=501", "?sort=size", "?rejected=yes", "?owner=Team_A", "?cursor=x", "?q=" + strings.Repeat("a", 129)} {
			checkUserMessage(t, e.do(req{method: "GET", path: "/v1/summary/services" + bad, token: e.admin}), http.StatusBadRequest)
		}
	})
}

// TestSummaryPages: a cursor walks every page once, in order, whatever the
// sort; total counts every page; a cursor of another sort is refused.
func TestSummaryPages(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *testEnv) {
		var names []string
		for i := range 23 {
			name := fmt.Sprintf("svc-%02d", (i*7)%23) // created out of name order
			seed(t, e.store, configsvc.Service(name), map[string]string{"a.txt": name})
			names = append(names, name)
		}
		byName := slices.Sorted(slices.Values(names))
		newest := slices.Clone(names)
		slices.Reverse(newest)
		for _, tc := range []struct {
			sort string
			want []string
		}{
			{"name", byName},
			{"updated", names},
			{"-updated", newest},
		} {
			t.Run(tc.sort, func(t *testing.T) {
				e := e.withT(t)
				var got []string
				cursor := ""
				for pages := 0; ; pages++ {
					if pages > 10 {
						t.Fatal("more pages than rows")
					}
					q := url.Values{"limit": {"5"}, "sort": {tc.sort}}
					if cursor != "" {
						q.Set("cursor", cursor)
					}
					page := e.services(e.admin, "?"+q.Encode())
					if page.Total != 23 || len(page.Items) > 5 {
						t.Fatalf("page %d: %d items, total %d", pages, len(page.Items), page.Total)
					}
					got = append(got, serviceNames(page)...)
					if cursor = page.Next; cursor == "" {
						break
					}
				}
				if !slices.Equal(got, tc.want) {
					t.Fatalf("pages = %v, want %v", got, tc.want)
				}
			})
		}
		first := e.services(e.admin, "?limit=5")
		checkUserMessage(t, e.do(req{method: "GET", path: "/v1/summary/services?sort=-updated&cursor=" + first.Next, token: e.admin}),
			http.StatusBadRequest, "cursor", "sorted by name")
	})
}

// TestSummaryFollowsChanges: what this server changes shows in the next
// summary at once; what another server changes (straight in the store)
// shows as the store's watches deliver it.
func TestSummaryFollowsChanges(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *testEnv) {
		e.srv.index.every = 50 * time.Millisecond
		e.mustService("orders", map[string]string{"a.txt": "1"})
		e.mustGroup("common", nil)
		if got := e.services(e.admin, ""); len(got.Items) != 1 || got.Items[0].Revision != 1 {
			t.Fatalf("summary = %+v", got)
		}

		// Through this server: at once.
		e.mustService("billing", nil)
		e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/b.txt", token: e.admin, body: "b", contentType: "text/plain"})
		e.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/links/common", token: e.admin})
		got := e.services(e.admin, "")
		if names := serviceNames(got); !slices.Equal(names, []string{"billing", "orders"}) || got.Items[1].Revision != 2 || got.Items[1].Files != 2 ||
			!slices.Equal(got.Items[1].Links, []string{"common"}) {
			t.Fatalf("after changes through this server: %+v", got)
		}
		e.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/services/billing", token: e.admin})
		if names := serviceNames(e.services(e.admin, "")); !slices.Equal(names, []string{"orders"}) {
			t.Fatalf("after delete: %v", names)
		}

		// Through another server (the store): as the watches deliver.
		ctx := context.Background()
		if _, err := e.store.Publish(ctx, configsvc.Service("orders"), configsvc.Changeset{Base: 2, Author: "elsewhere",
			Changes: []configsvc.Change{{File: "a.txt", Delete: true}}}); err != nil {
			t.Fatal(err)
		}
		register(t, e.store, configsvc.Instance{Service: "orders", ID: "o-1", Status: configsvc.StatusApplied, Revision: 3})
		seed(t, e.store, configsvc.Service("search"), nil)
		if err := e.store.Unlink(ctx, "orders", "common"); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, "changes made elsewhere in the summary", func() error {
			got := e.services(e.admin, "")
			if names := serviceNames(got); !slices.Equal(names, []string{"orders", "search"}) {
				return fmt.Errorf("services %v", names)
			}
			o := got.Items[0]
			if o.Revision != 3 || o.Files != 1 || o.Author != "elsewhere" || len(o.Links) != 0 || o.Instances.Current != 1 {
				return fmt.Errorf("orders %+v", o)
			}
			return nil
		})
		if err := e.store.Delete(ctx, configsvc.Service("search")); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, "a service deleted elsewhere leaves the summary", func() error {
			if names := serviceNames(e.services(e.admin, "")); !slices.Equal(names, []string{"orders"}) {
				return fmt.Errorf("services %v", names)
			}
			return nil
		})
	})
}

// countingStore counts the store reads a summary could make.
type countingStore struct {
	configsvc.Store
	reads atomic.Int64
}

func (c *countingStore) List(ctx context.Context, k configsvc.Kind) ([]string, error) {
	c.reads.Add(1)
	return c.Store.List(ctx, k)
}

func (c *countingStore) Head(ctx context.Context, ref configsvc.Ref) (configsvc.Head, error) {
	c.reads.Add(1)
	return c.Store.Head(ctx, ref)
}

func (c *countingStore) Instances(ctx context.Context, svc string) ([]configsvc.Instance, error) {
	c.reads.Add(1)
	return c.Store.Instances(ctx, svc)
}

func (c *countingStore) Users(ctx context.Context, group string) ([]string, error) {
	c.reads.Add(1)
	return c.Store.Users(ctx, group)
}

func (c *countingStore) Snapshot(ctx context.Context, ref configsvc.Ref, rev int64) (configsvc.Snapshot, error) {
	c.reads.Add(1)
	return c.Store.Snapshot(ctx, ref, rev)
}

// thousandServices is a server on a store holding 1,000 services (each with
// a file, every tenth linked to a group, every seventh with an instance).
func thousandServices(t testing.TB) (*testEnv, *countingStore) {
	t.Helper()
	cs := &countingStore{Store: configsvc.Validating(bolttest.MustOpen(t, boltstore.Options{}), format.Validator{})}
	e := newEnvOn(t, cs)
	seed(t, cs, configsvc.Group("common"), map[string]string{"c.yaml": "x: 1\n"})
	for i := range 1000 {
		name := fmt.Sprintf("svc-%04d", i)
		seed(t, cs, configsvc.Service(name), map[string]string{"app.yaml": fmt.Sprintf("name: %s\nport: %d\n", name, 8000+i)})
		if i%10 == 0 {
			if err := cs.Link(context.Background(), name, "common"); err != nil {
				t.Fatal(err)
			}
		}
		if i%7 == 0 {
			register(t, cs, configsvc.Instance{Service: name, ID: name + "-1", Status: configsvc.StatusApplied, Revision: 1})
		}
	}
	return e, cs
}

// TestSummaryThousandServicesNoStoreReads: with 1,000 services, once the
// summary index is loaded, pages, totals, filters and sorts read nothing
// from the store.
func TestSummaryThousandServicesNoStoreReads(t *testing.T) {
	if testing.Short() {
		t.Skip("seeds 1,000 services")
	}
	e, cs := thousandServices(t)
	first := e.services(e.admin, "?limit=100")
	if len(first.Items) != 100 || first.Total != 1000 || first.Next == "" {
		t.Fatalf("first page: %d items, total %d", len(first.Items), first.Total)
	}
	before := cs.reads.Load()
	for _, q := range []string{"?limit=100&cursor=" + first.Next, "?limit=500&sort=-updated", "?q=svc-09", "?owner=svc-00*", "?limit=1"} {
		if got := e.services(e.admin, q); got.Total == 0 {
			t.Fatalf("%s: nothing", q)
		}
	}
	if g := e.groups(e.admin, ""); len(g.Items) != 1 || len(g.Items[0].Users) != 100 || g.Items[0].Instances.Total != 15 {
		t.Fatalf("groups = %d items", len(g.Items))
	}
	if n := cs.reads.Load() - before; n != 0 {
		t.Fatalf("%d store reads for warm summary pages, want 0", n)
	}
}

// TestSummaryTwoServersOnZooKeeper: two servers on one ZooKeeper; what one
// changes (publishes, links, instances, creations, deletions) reaches the
// other's summary through ZooKeeper's watches, and its error messages are
// as plain as on bbolt.
func TestSummaryTwoServersOnZooKeeper(t *testing.T) {
	zk := zktest.Start(t)
	a := newEnvOn(t, mustZK(t, zk, "/sluice-summary"))
	b := newEnvOn(t, mustZK(t, zk, "/sluice-summary"))
	b.admin = a.admin
	b.srv.index.every = 100 * time.Millisecond
	a.mustService("orders", map[string]string{"a.txt": "1"})
	a.mustGroup("common", map[string]string{"c.yaml": "x: 1\n"})
	if got := b.services(b.admin, ""); len(got.Items) != 1 || got.Items[0].Revision != 1 {
		t.Fatalf("b's first summary = %+v", got)
	}

	a.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/links/common", token: a.admin})
	a.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/b.txt", token: a.admin, body: "b", contentType: "text/plain"})
	a.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/orders/instances/o-1", token: a.admin,
		body: map[string]any{"addr": "127.0.0.1:1", "status": "applied", "revision": 2}})
	a.mustService("billing", nil)
	testkit.Eventually(t, 15*time.Second, "a's changes in b's summary", func() error {
		got := b.services(b.admin, "")
		if names := serviceNames(got); !slices.Equal(names, []string{"billing", "orders"}) {
			return fmt.Errorf("services %v", names)
		}
		o := got.Items[1]
		if o.Revision != 2 || o.Files != 2 || !slices.Equal(o.Links, []string{"common"}) || o.Instances.Current != 1 {
			return fmt.Errorf("orders %+v", o)
		}
		if g := b.groups(b.admin, ""); len(g.Items) != 1 || !slices.Equal(g.Items[0].Users, []string{"orders"}) || g.Items[0].Instances.Total != 1 {
			return fmt.Errorf("groups %+v", g)
		}
		return nil
	})
	a.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/services/billing", token: a.admin})
	a.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/services/orders/instances/o-1", token: a.admin})
	testkit.Eventually(t, 15*time.Second, "a's deletions in b's summary", func() error {
		got := b.services(b.admin, "")
		if names := serviceNames(got); !slices.Equal(names, []string{"orders"}) || got.Items[0].Instances.Total != 0 {
			return fmt.Errorf("services %+v", got.Items)
		}
		return nil
	})
	if r := b.search(b.admin, "X: 1", 0); resultsText(r) != "group/common c.yaml:1 x: 1" {
		t.Fatalf("b's search found\n%s", resultsText(r))
	}
	checkUserMessage(t, b.do(req{method: "GET", path: "/v1/services/orders/files/nope.txt", token: b.admin}), http.StatusNotFound, "service orders has no file nope.txt")
	checkUserMessage(t, b.do(req{method: "GET", path: "/v1/services/gone", token: b.admin}), http.StatusNotFound, "service gone does not exist")
}

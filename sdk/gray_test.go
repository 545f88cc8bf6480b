package sdk_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/sdk"
)

// The gray tests (issue 13, docs/gray.md) run on every transport: the
// in-process store, ZooKeeper, and the admin server's API and SSE stream.
// Service orders starts at revision 1 with db.yaml (host main, port 1) and
// other.txt.

const (
	mainDB = "host: main\nport: 1\n"
	grayDB = "host: gray\nport: 2\n"
)

func grayService(t *testing.T, e *env) configsvc.Ref {
	t.Helper()
	svc := configsvc.Service("orders")
	mustCreate(t, e.pub, svc)
	mustPublish(t, e.pub, svc, map[string]string{"db.yaml": mainDB, "other.txt": "other"})
	return svc
}

func putChange(file, content string) configsvc.Change {
	return configsvc.Change{File: file, Content: []byte(content)}
}

func delChange(file string) configsvc.Change { return configsvc.Change{File: file, Delete: true} }

// mustCreateGray creates a gray of ref on main's head.
func mustCreateGray(t *testing.T, st configsvc.Store, ref configsvc.Ref, sel configsvc.Selector, changes ...configsvc.Change) configsvc.Gray {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := st.Head(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	g, err := st.CreateGray(ctx, ref, configsvc.Gray{Name: "test gray", Author: "test", BaseRevision: h.Revision, Changes: changes, Selector: sel})
	if err != nil {
		t.Fatalf("create gray: %v", err)
	}
	return g
}

// setSelector replaces the selector of gray id.
func setSelector(t *testing.T, st configsvc.Store, ref configsvc.Ref, id string, sel configsvc.Selector) configsvc.Gray {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := st.Gray(ctx, ref, id)
	if err != nil {
		t.Fatal(err)
	}
	out, err := st.UpdateGray(ctx, ref, id, g.Version, func(x *configsvc.Gray) error { x.Selector = sel; return nil })
	if err != nil {
		t.Fatalf("set selector of %s: %v", id, err)
	}
	return out
}

// endGray abandons gray id, or promotes it on main's head.
func endGray(t *testing.T, st configsvc.Store, ref configsvc.Ref, id string, promote bool) *configsvc.Revision {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g, err := st.Gray(ctx, ref, id)
	if err != nil {
		t.Fatal(err)
	}
	end := configsvc.GrayEnd{State: configsvc.GrayAbandoned, Reason: "test"}
	if promote {
		h, err := st.Head(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		end = configsvc.GrayEnd{State: configsvc.GrayPromoted, Reason: "test", Promote: &configsvc.Changeset{Base: h.Revision, Author: "test"}}
	}
	_, rev, err := st.EndGray(ctx, ref, id, g.Version, end)
	if err != nil {
		t.Fatalf("end gray %s: %v", id, err)
	}
	return rev
}

// grayStatus returns what instance id of orders reports about gray, once
// it reports it.
func grayStatus(t *testing.T, st configsvc.Store, id, gray string, want configsvc.GrayApplyStatus) configsvc.GrayStatus {
	t.Helper()
	var got configsvc.GrayStatus
	testkit.Eventually(t, 10*time.Second, "instance "+id+" reports gray "+gray+" "+string(want), func() error {
		in, ok := instance(st, "orders", id)
		if !ok {
			return fmt.Errorf("not registered")
		}
		got = in.Grays[gray]
		if got.Status != want {
			return fmt.Errorf("reports %+v (all: %+v)", got, in.Grays)
		}
		return nil
	})
	return got
}

// noGrayReports waits until instance id of orders reports no gray.
func noGrayReports(t *testing.T, st configsvc.Store, id string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, "instance "+id+" reports no gray", func() error {
		in, ok := instance(st, "orders", id)
		if !ok {
			return fmt.Errorf("not registered")
		}
		if len(in.Grays) > 0 {
			return fmt.Errorf("reports %+v", in.Grays)
		}
		return nil
	})
}

func wantGrays(t *testing.T, c *sdk.Client, what string, want ...string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, what, func() error {
		if got := c.Grays(); !slices.Equal(got, want) {
			return fmt.Errorf("Grays() = %v, want %v", got, want)
		}
		return nil
	})
}

func wantFile(t *testing.T, c *sdk.Client, what, name, content string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, what, func() error {
		got, ok := c.File(name)
		if !ok || string(got) != content {
			return fmt.Errorf("File(%s) = %q, %v; want %q", name, got, ok, content)
		}
		return nil
	})
}

// grayChanges returns the changes of log that a gray brought.
func (l *changeLog) all() []sdk.Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.changes)
}

// TestGrayMembershipByID: a gray for instance orders-1 reaches orders-1
// (File, Bind, OnChange with Change.Gray, Grays, its record) and not
// orders-2.
func TestGrayMembershipByID(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := grayService(t, e)
			c1 := mustOpen(t, e.config(t, "orders", "orders-1"))
			c2 := mustOpen(t, e.config(t, "orders", "orders-2"))
			db1 := sdk.Bind[DBConfig](c1, "db.yaml")
			var log1, log2 changeLog
			c1.OnChange("db.yaml", log1.add)
			c2.OnChange("db.yaml", log2.add)

			g := mustCreateGray(t, e.pub, svc, configsvc.Selector{Instances: []string{"orders-1"}}, putChange("db.yaml", grayDB))
			wantGrays(t, c1, "orders-1 in the gray", g.ID)
			wantFile(t, c1, "orders-1 on the gray's db.yaml", "db.yaml", grayDB)
			if got := db1.Load(); got != (DBConfig{"gray", 2}) || db1.Err() != nil {
				t.Fatalf("orders-1 binding: %+v, %v", got, db1.Err())
			}
			testkit.EventuallyTrue(t, 5*time.Second, "orders-1's callback", func() bool { return len(log1.all()) == 1 })
			if ch := log1.all()[0]; ch.Gray != g.ID || ch.Revision != 1 || string(ch.Old) != mainDB || string(ch.New) != grayDB {
				t.Fatalf("orders-1's change = %+v (old %q new %q), want gray %s at revision 1", ch, ch.Old, ch.New, g.ID)
			}
			if st := grayStatus(t, e.pub, "orders-1", g.ID, configsvc.GrayApplied); st.Version != g.Version {
				t.Fatalf("orders-1 reports version %d, want %d", st.Version, g.Version)
			}
			if in, _ := instance(e.pub, "orders", "orders-1"); in.Status != configsvc.StatusApplied || in.Revision != 1 {
				t.Fatalf("orders-1's main status: %s at %d", in.Status, in.Revision)
			}

			holdsFor(t, 300*time.Millisecond, "orders-2 stays on main", func() bool {
				return len(c2.Grays()) == 0 && fileIs(c2, "db.yaml", mainDB) && len(log2.all()) == 0
			})
			noGrayReports(t, e.pub, "orders-2")
			if c1.Revision() != 1 || c2.Revision() != 1 {
				t.Fatalf("revisions %d, %d: a gray is not a revision of main", c1.Revision(), c2.Revision())
			}
		})
	}
}

// TestGrayMembershipByLabels: a gray for the label zone=b reaches the
// instance registered with it and not the one in zone a.
func TestGrayMembershipByLabels(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := grayService(t, e)
			a := mustOpen(t, e.config(t, "orders", "orders-a"))
			cfgB := e.config(t, "orders", "orders-b")
			cfgB.Instance.Labels = map[string]string{"zone": "b", "tier": "web"}
			b := mustOpen(t, cfgB)
			g := mustCreateGray(t, e.pub, svc, configsvc.Selector{Labels: []map[string]string{{"zone": "b"}}}, putChange("db.yaml", grayDB))
			wantFile(t, b, "zone b on the gray", "db.yaml", grayDB)
			wantGrays(t, b, "zone b in the gray", g.ID)
			grayStatus(t, e.pub, "orders-b", g.ID, configsvc.GrayApplied)
			holdsFor(t, 300*time.Millisecond, "zone a stays on main", func() bool { return len(a.Grays()) == 0 && fileIs(a, "db.yaml", mainDB) })
		})
	}
}

// cohortIDs returns an instance id in the cohort of gray g and one out
// of it, by the one implementation of membership.
func cohortIDs(t *testing.T, g configsvc.Gray) (in, out string) {
	t.Helper()
	for i := 0; i < 1000 && (in == "" || out == ""); i++ {
		id := fmt.Sprintf("orders-%d", i)
		if g.Selector.Matches(g.ID, configsvc.Instance{Service: "orders", ID: id}) {
			in = cmpOr(in, id)
		} else {
			out = cmpOr(out, id)
		}
	}
	if in == "" || out == "" {
		t.Fatalf("no ids in and out of %v %%", g.Selector.Percent)
	}
	return in, out
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// unreachable returns cfg with a transport that cannot be reached: the
// client starts from its cache.
func unreachable(cfg sdk.Config) sdk.Config {
	cfg.Store, cfg.ZooKeeper, cfg.Servers = nil, nil, nil
	cfg.Server, cfg.Token = "http://127.0.0.1:1", "none"
	cfg.OpenTimeout = 500 * time.Millisecond
	return cfg
}

// TestGrayStickyPercentAcrossRestart: with a 50 % gray, an instance in
// the cohort is in it again after a restart with the same id — at once
// when the store answers, and from the cache when it does not (before
// serving anything) — and one out of it stays out, even when it starts
// from a cache the member wrote.
func TestGrayStickyPercentAcrossRestart(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := grayService(t, e)
			g := mustCreateGray(t, e.pub, svc, configsvc.Selector{Percent: 50}, putChange("db.yaml", grayDB), delChange("other.txt"))
			inID, outID := cohortIDs(t, g)
			cache := t.TempDir()
			cfgIn, cfgOut := e.config(t, "orders", inID), e.config(t, "orders", outID)
			cfgIn.CacheDir, cfgOut.CacheDir = cache, cache

			open := func(cfg sdk.Config, what string, member bool) *sdk.Client {
				t.Helper()
				c := mustOpen(t, cfg)
				// Right after Open: what the process serves from the start.
				db, _ := c.File("db.yaml")
				_, other := c.File("other.txt")
				if member && (!slices.Equal(c.Grays(), []string{g.ID}) || string(db) != grayDB || other) {
					t.Fatalf("%s: Grays %v, db.yaml %q, other.txt present %v; want the gray from the start", what, c.Grays(), db, other)
				}
				if !member && (len(c.Grays()) != 0 || string(db) != mainDB || !other) {
					t.Fatalf("%s: Grays %v, db.yaml %q, other.txt present %v; want main", what, c.Grays(), db, other)
				}
				return c
			}
			first := open(cfgIn, "first start in the cohort", true)
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			again := open(cfgIn, "restart with the store", true)
			if err := again.Close(); err != nil {
				t.Fatal(err)
			}
			cached := open(unreachable(cfgIn), "restart from the cache", true)
			if !cached.FromCache() {
				t.Fatal("restart without a store: FromCache() false")
			}
			if err := cached.Close(); err != nil {
				t.Fatal(err)
			}
			// The cache holds the member's state; the other instance sharing
			// it restores main.
			outside := open(unreachable(cfgOut), "another instance from the member's cache", false)
			if err := outside.Close(); err != nil {
				t.Fatal(err)
			}
			open(cfgOut, "the other instance with the store", false)
		})
	}
}

// TestGrayWidenNarrow: raising the percent to 100 brings every instance
// in; lowering it back takes out only those outside the lower percent.
func TestGrayWidenNarrow(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := grayService(t, e)
			g := mustCreateGray(t, e.pub, svc, configsvc.Selector{Percent: 50}, putChange("db.yaml", grayDB))
			inID, outID := cohortIDs(t, g)
			in := mustOpen(t, e.config(t, "orders", inID))
			out := mustOpen(t, e.config(t, "orders", outID))
			wantGrays(t, in, "the member in", g.ID)
			wantGrays(t, out, "the other out")

			wide := setSelector(t, e.pub, svc, g.ID, configsvc.Selector{Percent: 100})
			wantGrays(t, out, "the other in after widening", g.ID)
			wantFile(t, out, "the other on the gray", "db.yaml", grayDB)
			if st := grayStatus(t, e.pub, outID, g.ID, configsvc.GrayApplied); st.Version != wide.Version {
				t.Fatalf("the widened instance reports version %d, want %d", st.Version, wide.Version)
			}
			setSelector(t, e.pub, svc, g.ID, configsvc.Selector{Percent: 50})
			wantGrays(t, out, "the other out after narrowing")
			wantFile(t, out, "the other back on main", "db.yaml", mainDB)
			noGrayReports(t, e.pub, outID)
			holdsFor(t, 300*time.Millisecond, "the member stays in", func() bool {
				return slices.Equal(in.Grays(), []string{g.ID}) && fileIs(in, "db.yaml", grayDB)
			})
		})
	}
}

// TestGrayDeletedFile: a gray deletes other.txt and adds new.txt; the
// cohort loses and gains them (callbacks name the gray), the others keep
// main; abandoning gives the cohort main back.
func TestGrayDeletedFile(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := grayService(t, e)
			c := mustOpen(t, e.config(t, "orders", "orders-1"))
			other := mustOpen(t, e.config(t, "orders", "orders-2"))
			var log changeLog
			c.OnChange("other.txt", log.add)
			g := mustCreateGray(t, e.pub, svc, configsvc.Selector{Instances: []string{"orders-1"}}, delChange("other.txt"), putChange("new.txt", "new"))
			wantFile(t, c, "new.txt from the gray", "new.txt", "new")
			if _, ok := c.File("other.txt"); ok {
				t.Fatal("other.txt still served to the cohort")
			}
			if got := c.Files(); !slices.Equal(got, []string{"db.yaml", "new.txt"}) {
				t.Fatalf("Files() = %v", got)
			}
			testkit.EventuallyTrue(t, 5*time.Second, "deletion callback", func() bool { return len(log.all()) == 1 })
			if ch := log.all()[0]; !ch.Deleted || ch.Gray != g.ID || string(ch.Old) != "other" {
				t.Fatalf("deletion change = %+v", ch)
			}
			grayStatus(t, e.pub, "orders-1", g.ID, configsvc.GrayApplied)
			holdsFor(t, 200*time.Millisecond, "the other instance keeps other.txt", func() bool {
				_, hasNew := other.File("new.txt")
				return fileIs(other, "other.txt", "other") && !hasNew
			})

			endGray(t, e.pub, svc, g.ID, false)
			wantFile(t, c, "other.txt back after the abandon", "other.txt", "other")
			if _, ok := c.File("new.txt"); ok {
				t.Fatal("new.txt still served after the abandon")
			}
			testkit.EventuallyTrue(t, 5*time.Second, "callback of the return", func() bool { return len(log.all()) == 2 })
			if ch := log.all()[1]; ch.Deleted || ch.Gray != "" || string(ch.New) != "other" {
				t.Fatalf("return change = %+v", ch)
			}
			wantGrays(t, c, "no gray after the abandon")
			noGrayReports(t, e.pub, "orders-1")
		})
	}
}

// TestGrayMainMovesUnderneath: main publishes while the gray is active;
// the cohort gets main's new revision, with the gray's db.yaml still
// winning; after the abandon it runs main's newest db.yaml.
func TestGrayMainMovesUnderneath(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := grayService(t, e)
			c := mustOpen(t, e.config(t, "orders", "orders-1"))
			other := mustOpen(t, e.config(t, "orders", "orders-2"))
			g := mustCreateGray(t, e.pub, svc, configsvc.Selector{Instances: []string{"orders-1"}}, putChange("db.yaml", grayDB))
			wantFile(t, c, "the gray", "db.yaml", grayDB)
			const main2 = "host: main2\nport: 3\n"
			r2 := mustPublish(t, e.pub, svc, map[string]string{"db.yaml": main2, "x.txt": "x"})
			wantFile(t, c, "main's new file in the cohort", "x.txt", "x")
			wantFile(t, other, "main's db.yaml outside", "db.yaml", main2)
			if c.Revision() != r2 || !fileIs(c, "db.yaml", grayDB) {
				got, _ := c.File("db.yaml")
				t.Fatalf("cohort at revision %d with db.yaml %q; want %d and the gray's", c.Revision(), got, r2)
			}
			if in, _ := instance(e.pub, "orders", "orders-1"); in.Grays[g.ID].Status != configsvc.GrayApplied {
				t.Fatalf("after main moved orders-1 reports %+v", in.Grays)
			}
			endGray(t, e.pub, svc, g.ID, false)
			wantFile(t, c, "main's newest db.yaml after the abandon", "db.yaml", main2)
		})
	}
}

// TestGrayRejectionReported: the cohort's binding refuses the gray's
// db.yaml (Validate): it keeps main's value, Err names the gray, and the
// instance reports the gray rejected with the reason while its main
// status stays applied; the abandon clears it.
func TestGrayRejectionReported(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := grayService(t, e)
			c := mustOpen(t, e.config(t, "orders", "orders-1"))
			db := sdk.Bind[DBConfig](c, "db.yaml")
			g := mustCreateGray(t, e.pub, svc, configsvc.Selector{Instances: []string{"orders-1", "orders-3"}}, putChange("db.yaml", "host: gray\nport: 0\n"), putChange("ok.txt", "fine"))
			st := grayStatus(t, e.pub, "orders-1", g.ID, configsvc.GrayRejected)
			if !strings.Contains(st.Reason, "outside 1-65535") || !strings.Contains(st.Reason, g.ID) {
				t.Fatalf("reported reason %q, want the validation failure naming the gray", st.Reason)
			}
			if got := db.Load(); got != (DBConfig{"main", 1}) {
				t.Fatalf("Load() = %+v, want main's value kept", got)
			}
			if err := db.Err(); err == nil || !strings.Contains(err.Error(), g.ID) {
				t.Fatalf("Err() = %v, want the rejection naming the gray", err)
			}
			if !fileIs(c, "db.yaml", mainDB) || !fileIs(c, "ok.txt", "fine") || !slices.Equal(c.Grays(), []string{g.ID}) {
				t.Fatalf("files %v, Grays %v: the gray's other file applies, db.yaml keeps main", c.Files(), c.Grays())
			}
			if in, _ := instance(e.pub, "orders", "orders-1"); in.Status != configsvc.StatusApplied || in.Error != "" {
				t.Fatalf("main status %s (%q): a gray's rejection is not main's", in.Status, in.Error)
			}
			// An instance that starts in the gray and binds the file then:
			// the same rejection, reported for the gray.
			late := mustOpen(t, e.config(t, "orders", "orders-3"))
			lateDB := sdk.Bind[DBConfig](late, "db.yaml")
			if err := lateDB.Err(); err == nil || !strings.Contains(err.Error(), g.ID) || !slices.Equal(late.Grays(), []string{g.ID}) {
				t.Fatalf("late binding: Err %v, Grays %v; want the gray's rejection", err, late.Grays())
			}
			grayStatus(t, e.pub, "orders-3", g.ID, configsvc.GrayRejected)
			if in, _ := instance(e.pub, "orders", "orders-3"); in.Status != configsvc.StatusApplied {
				t.Fatalf("late instance's main status %s (%q)", in.Status, in.Error)
			}
			endGray(t, e.pub, svc, g.ID, false)
			noGrayReports(t, e.pub, "orders-1")
			testkit.EventuallyTrue(t, 5*time.Second, "the late binding gets main's value", func() bool {
				return lateDB.Err() == nil && lateDB.Load() == (DBConfig{"main", 1})
			})
			testkit.EventuallyTrue(t, 5*time.Second, "the rejection cleared", func() bool { return db.Err() == nil && len(c.Grays()) == 0 })
		})
	}
}

// TestGrayPromoteNoBackInTime: promoting the gray leaves the cohort on
// the promoted main revision without a step back to the old main (one
// callback: the gray's arrival), and brings the others the new content.
func TestGrayPromoteNoBackInTime(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := grayService(t, e)
			c := mustOpen(t, e.config(t, "orders", "orders-1"))
			other := mustOpen(t, e.config(t, "orders", "orders-2"))
			var log, otherLog changeLog
			c.OnChange("db.yaml", log.add)
			other.OnChange("db.yaml", otherLog.add)
			g := mustCreateGray(t, e.pub, svc, configsvc.Selector{Instances: []string{"orders-1"}}, putChange("db.yaml", grayDB))
			wantFile(t, c, "the gray", "db.yaml", grayDB)
			rev := endGray(t, e.pub, svc, g.ID, true)
			testkit.EventuallyTrue(t, 10*time.Second, "both on the promoted revision, out of the gray", func() bool {
				return c.Revision() == rev.Number && other.Revision() == rev.Number && len(c.Grays()) == 0
			})
			wantFile(t, other, "the promoted content", "db.yaml", grayDB)
			holdsFor(t, 300*time.Millisecond, "the cohort stays on the promoted content", func() bool { return fileIs(c, "db.yaml", grayDB) })
			if got := log.all(); len(got) != 1 || got[0].Gray != g.ID {
				t.Fatalf("the cohort's db.yaml changes: %+v; want only the gray's arrival", got)
			}
			if got := otherLog.all(); len(got) != 1 || got[0].Revision != rev.Number || got[0].Gray != "" {
				t.Fatalf("the other instance's changes: %+v; want one at revision %d", got, rev.Number)
			}
			noGrayReports(t, e.pub, "orders-1")
		})
	}
}

// TestGrayOnLinkedGroup: a gray of a shared group reaches the instances of
// the services that link it, under the group's name.
func TestGrayOnLinkedGroup(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := grayService(t, e)
			grp := configsvc.Group("redis-common")
			mustCreate(t, e.pub, grp)
			mustPublish(t, e.pub, grp, map[string]string{"redis.yaml": "pool: 1\n"})
			mustLink(t, e.pub, svc.Name, grp.Name)
			c := mustOpen(t, e.config(t, "orders", "orders-1"))
			var log changeLog
			c.OnChange("redis-common/redis.yaml", log.add)
			g := mustCreateGray(t, e.pub, grp, configsvc.Selector{Instances: []string{"orders-1"}}, putChange("redis.yaml", "pool: 9\n"))
			wantFile(t, c, "the group's gray", "redis-common/redis.yaml", "pool: 9\n")
			wantGrays(t, c, "in the group's gray", g.ID)
			grayStatus(t, e.pub, "orders-1", g.ID, configsvc.GrayApplied)
			testkit.EventuallyTrue(t, 5*time.Second, "callback", func() bool { return len(log.all()) == 1 })
			if ch := log.all()[0]; ch.Gray != g.ID {
				t.Fatalf("change = %+v", ch)
			}
			endGray(t, e.pub, grp, g.ID, false)
			wantFile(t, c, "the group's main after the abandon", "redis-common/redis.yaml", "pool: 1\n")
		})
	}
}

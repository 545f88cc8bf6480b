package boltstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/configsvc/testkit"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/storetest"
)

// lockHelperEnv makes the test binary act as a second process that tries to
// open the file named by the variable and reports what happened.
const lockHelperEnv = "BOLTSTORE_LOCK_HELPER"

func TestMain(m *testing.M) {
	if path := os.Getenv(lockHelperEnv); path != "" {
		os.Exit(lockHelper(path))
	}
	goleak.VerifyTestMain(m, testkit.LeakOptions()...)
}

// lockHelper opens path with the default options and prints "locked",
// "opened" or "error: …", and the time the attempt took.
func lockHelper(path string) int {
	start := time.Now()
	s, err := boltstore.Open(path, boltstore.Options{})
	took := time.Since(start)
	switch {
	case errors.Is(err, configsvc.ErrLocked):
		fmt.Printf("locked %d %s\n", took.Milliseconds(), err)
	case err != nil:
		fmt.Printf("error %d %s\n", took.Milliseconds(), err)
		return 1
	default:
		fmt.Printf("opened %d\n", took.Milliseconds())
		s.Close()
	}
	return 0
}

func TestConformance(t *testing.T) {
	storetest.RunWithOptions(t, storetest.Options{
		Open: func(t *testing.T) configsvc.Store { return bolttest.MustOpen(t, boltstore.Options{}) },
		OpenWithRetention: func(t *testing.T, n int) configsvc.Store {
			return bolttest.MustOpen(t, boltstore.Options{Retention: n})
		},
		OpenAt: func(t *testing.T, now func() time.Time) configsvc.Store {
			return bolttest.MustOpen(t, boltstore.Options{Now: now})
		},
		// One process holds a bbolt file: both "servers" are one store.
		OpenPair: func(t *testing.T, nowA, _ func() time.Time) (configsvc.Store, configsvc.Store) {
			st := bolttest.MustOpen(t, boltstore.Options{Now: nowA})
			return st, st
		},
		// A bbolt Delete is one transaction: it never stops half way.
		InterruptDelete: func(t *testing.T, st configsvc.Store, ref configsvc.Ref) {
			if err := st.Delete(t.Context(), ref); err != nil {
				t.Fatal(err)
			}
		},
		OpenWithLimits: func(t *testing.T, l configsvc.Limits) configsvc.Store {
			return bolttest.MustOpen(t, boltstore.Options{Limits: l})
		},
		Reopen: func(t *testing.T, st configsvc.Store, n int) configsvc.Store {
			bs := st.(*boltstore.Store)
			if err := bs.Close(); err != nil {
				t.Fatal(err)
			}
			return bolttest.MustOpenAt(t, bs.Path(), boltstore.Options{Retention: n})
		},
		StoredRevisions: func(t *testing.T, st configsvc.Store, ref configsvc.Ref) int {
			n, err := boltstore.StoredRevisions(st.(*boltstore.Store), ref)
			if err != nil {
				t.Fatal(err)
			}
			return n
		},
	})
}

// runHelper runs the test binary as a second process opening path.
func runHelper(t *testing.T, path string) (verdict string, took time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+path)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("second process: %v, output %q", err, out)
	}
	var ms int64
	if _, err := fmt.Sscanf(string(out), "%s %d", &verdict, &ms); err != nil {
		t.Fatalf("second process printed %q", out)
	}
	return verdict, time.Duration(ms) * time.Millisecond
}

func TestSecondProcessGetsErrLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.db")
	s := bolttest.MustOpenAt(t, path, boltstore.Options{})

	verdict, took := runHelper(t, path)
	if verdict != "locked" {
		t.Fatalf("second process opening a held file: %s, want locked", verdict)
	}
	// The default LockTimeout is 1s: the refusal comes after about that
	// long, never a hang.
	if took < 900*time.Millisecond || took > 3*time.Second {
		t.Fatalf("second process was refused after %v, want about 1s", took)
	}

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if verdict, _ := runHelper(t, path); verdict != "opened" {
		t.Fatalf("second process opening a released file: %s, want opened", verdict)
	}
}

func TestOpenCreatesPrivateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "sluice.db")
	bolttest.MustOpenAt(t, path, boltstore.Options{})
	for _, tc := range []struct {
		name string
		path string
		mode os.FileMode
	}{
		{"dir", dir, 0o700},
		{"file", path, 0o600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fi, err := os.Stat(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != tc.mode {
				t.Fatalf("%s mode %v, want %v", tc.path, fi.Mode().Perm(), tc.mode)
			}
		})
	}
}

func TestReopenKeepsDataDropsInstances(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.db")
	ctx := t.Context()
	s, err := boltstore.Open(path, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ref := configsvc.Service("orders")
	if err := s.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Publish(ctx, ref, configsvc.Changeset{Changes: []configsvc.Change{{File: "a.yaml", Content: []byte("a: 1\n")}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register(ctx, configsvc.Instance{Service: "orders", ID: "i-1", Status: configsvc.StatusApplied}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Records().Append(ctx, "audit", []byte("one"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = bolttest.MustOpenAt(t, path, boltstore.Options{})
	content, meta, err := s.File(ctx, ref, "a.yaml", 0)
	if err != nil || string(content) != "a: 1\n" || meta.Revision != 1 {
		t.Fatalf("after reopen File = %q rev %d, %v", content, meta.Revision, err)
	}
	insts, err := s.Instances(ctx, "orders")
	if err != nil || len(insts) != 0 {
		t.Fatalf("after reopen Instances = %v, %v; want none (they were the old process's)", insts, err)
	}
	seq, err := s.Records().Append(ctx, "audit", []byte("two"), 0)
	if err != nil || seq != 2 {
		t.Fatalf("after reopen Append = %d, %v; want sequence 2", seq, err)
	}
}

func TestInjectedClock(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600))
	s := bolttest.MustOpen(t, boltstore.Options{Now: func() time.Time { return at }})
	ctx := t.Context()
	ref := configsvc.Group("redis-common")
	if err := s.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	rev, err := s.Publish(ctx, ref, configsvc.Changeset{Changes: []configsvc.Change{{File: "a.txt", Content: []byte("x")}}})
	if err != nil {
		t.Fatal(err)
	}
	want := at.UTC()
	if rev.Time != want {
		t.Fatalf("published revision time %v, want %v", rev.Time, want)
	}
	got, err := s.Revision(ctx, ref, 1)
	if err != nil || !got.Time.Equal(want) || got.Time.Location() != time.UTC {
		t.Fatalf("stored revision time %v, %v; want %v", got.Time, err, want)
	}
	h, err := s.Head(ctx, ref)
	if err != nil || !h.Updated.Equal(want) {
		t.Fatalf("head updated %v, %v; want %v", h.Updated, err, want)
	}
}

func TestReopenWithSmallerRetention(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.db")
	ctx := t.Context()
	ref := configsvc.Service("orders")
	s, err := boltstore.Open(path, boltstore.Options{Retention: 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	for n := range int64(10) {
		if _, err := s.Publish(ctx, ref, configsvc.Changeset{Base: n, Changes: []configsvc.Change{{File: "a.txt", Content: fmt.Appendf(nil, "%d", n+1)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = bolttest.MustOpenAt(t, path, boltstore.Options{Retention: 3})
	if _, err := s.Publish(ctx, ref, configsvc.Changeset{Base: 10, Changes: []configsvc.Change{{File: "a.txt", Content: []byte("11")}}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rev  int64
		want error
	}{{1, configsvc.ErrCompacted}, {8, configsvc.ErrCompacted}, {9, nil}, {11, nil}} {
		t.Run(fmt.Sprint(tc.rev), func(t *testing.T) {
			content, _, err := s.File(ctx, ref, "a.txt", tc.rev)
			if !errors.Is(err, tc.want) {
				t.Fatalf("File at %d: %v, want %v", tc.rev, err, tc.want)
			}
			if err == nil && string(content) != fmt.Sprint(tc.rev) {
				t.Fatalf("File at %d = %q", tc.rev, content)
			}
		})
	}
}

func TestOpenRefusesBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		path func(t *testing.T) string
		opts boltstore.Options
		want string
	}{
		{"NegativeRetention", func(t *testing.T) string { return filepath.Join(t.TempDir(), "x.db") }, boltstore.Options{Retention: -1}, "retention"},
		{"NotADatabase", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "x.db")
			if err := os.WriteFile(p, []byte(strings.Repeat("not bolt ", 1000)), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}, boltstore.Options{}, "invalid"},
		{"ParentIsAFile", func(t *testing.T) string {
			p := filepath.Join(t.TempDir(), "file")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(p, "x.db")
		}, boltstore.Options{}, "not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := boltstore.Open(tc.path(t), tc.opts)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "boltstore: open ") {
				t.Fatalf("Open: %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestWatchFromNegativeStartsAtOne(t *testing.T) {
	s := bolttest.MustOpen(t, boltstore.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ref := configsvc.Service("orders")
	if err := s.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Publish(ctx, ref, configsvc.Changeset{Changes: []configsvc.Change{{File: "a.txt", Content: []byte("1")}}}); err != nil {
		t.Fatal(err)
	}
	ev := <-s.Watch(ctx, ref, -1)
	if ev.Err != nil || ev.Revision == nil || ev.Revision.Number != 1 {
		t.Fatalf("Watch from -1 delivered %+v, want revision 1 (as zkstore)", ev)
	}
}

// TestWatchEndsWhenRefRecreated checks that a watch of a deleted service
// never continues into a new service created under the same name.
func TestWatchEndsWhenRefRecreated(t *testing.T) {
	s := bolttest.MustOpen(t, boltstore.Options{})
	ctx := t.Context()
	ref := configsvc.Service("orders")
	publish := func(content string) {
		t.Helper()
		if _, err := s.Publish(ctx, ref, configsvc.Changeset{Changes: []configsvc.Change{{File: "a.txt", Content: []byte(content)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	publish("old")
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ch := s.Watch(wctx, ref, 0) // not read until the service is replaced
	if err := s.Delete(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	publish("new")
	var last configsvc.Event
	for ev := range ch {
		if ev.Revision != nil && string(ev.Revision.Changes[0].Content) == "new" {
			t.Fatalf("watch of the deleted service delivered the new service's revision")
		}
		last = ev
	}
	if !errors.Is(last.Err, configsvc.ErrNotFound) {
		t.Fatalf("watch ended with %+v, want an ErrNotFound event", last)
	}
}

// TestCloseUnderLoad closes the store while publishers, readers, watchers
// and instance registrations are busy: Close returns, every call in flight
// or after it ends with ErrClosed (never a panic or a hang), and watches
// delivered only consecutive revisions up to the end. TestMain's leak check
// then finds no goroutine left.
func TestCloseUnderLoad(t *testing.T) {
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "sluice.db"), boltstore.Options{Retention: 20})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	ref := configsvc.Service("orders")
	if err := s.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	report := func(what string, err error) {
		if err != nil && !errors.Is(err, configsvc.ErrClosed) && !errors.Is(err, configsvc.ErrConflict) {
			errs <- fmt.Errorf("%s: %w", what, err)
		}
	}
	for w := range 3 {
		wg.Go(func() {
			for i := range 300 {
				h, err := s.Head(ctx, ref)
				if err != nil {
					report("head", err)
					return
				}
				_, err = s.Publish(ctx, ref, configsvc.Changeset{Base: h.Revision, Changes: []configsvc.Change{{File: "a.txt", Content: fmt.Appendf(nil, "%d-%d", w, i)}}})
				if errors.Is(err, configsvc.ErrClosed) {
					return
				}
				report("publish", err)
			}
		})
	}
	wg.Go(func() {
		for i := range 300 {
			l, err := s.Register(ctx, configsvc.Instance{Service: "orders", ID: fmt.Sprint("i-", i)})
			if err != nil {
				report("register", err)
				return
			}
			report("lease close", l.Close())
		}
	})
	for range 5 {
		ch := s.Watch(ctx, ref, 0)
		wg.Go(func() {
			last := int64(0)
			for ev := range ch {
				if ev.Revision != nil {
					if ev.Revision.Number != last+1 {
						errs <- fmt.Errorf("watch delivered %d after %d", ev.Revision.Number, last)
						return
					}
					last = ev.Revision.Number
				}
			}
		})
		ich := s.WatchInstances(ctx, "orders")
		wg.Go(func() {
			for range ich {
			}
		})
	}
	time.Sleep(200 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestWatchCatchesUpAcrossBatches has a watcher start 150 revisions behind,
// more than one read batch, and still receive each in order.
func TestWatchCatchesUpAcrossBatches(t *testing.T) {
	s := bolttest.MustOpen(t, boltstore.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ref := configsvc.Service("orders")
	if err := s.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	const n = 150
	for i := range int64(n) {
		cs := configsvc.Changeset{Base: i, Changes: []configsvc.Change{{File: "a.txt", Content: fmt.Appendf(nil, "%d", i+1)}}}
		if _, err := s.Publish(ctx, ref, cs); err != nil {
			t.Fatal(err)
		}
	}
	ch := s.Watch(ctx, ref, 3)
	for want := int64(4); want <= n; want++ {
		ev := <-ch
		if ev.Err != nil || ev.Revision == nil || ev.Revision.Number != want || string(ev.Revision.Changes[0].Content) != fmt.Sprint(want) {
			t.Fatalf("event %+v, want revision %d with its content", ev, want)
		}
	}
}

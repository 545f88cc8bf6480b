package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/testkit"
)

// testGrowth checks the limits that keep a store working as services and
// their history grow, identically on every store.
func (s *suite) testGrowth(t *testing.T) {
	t.Run("NearFileLimit", s.testNearFileLimit)
	t.Run("PruneConvergesAfterRetentionLowered", s.testPruneConverges)
	t.Run("CountLimits", s.testCountLimits)
	t.Run("CreateRecord", s.testCreateRecord)
}

// testNearFileLimit: a service with MaxFilesPerService files still
// publishes a one-byte change (a store whose publish grows with the
// service could not), a publish that would add a file is refused with a
// LimitError naming the limit, and one that replaces a file is not.
func (s *suite) testNearFileLimit(t *testing.T) {
	st, ctx := s.open(t)
	ref := configsvc.Service("wide")
	mustCreate(ctx, t, st, ref)
	// Names of 48 bytes: a layout that carries the manifest in every
	// publish cannot publish anything once the service is this big.
	name := func(i int) string { return fmt.Sprintf("f%04d-%s.txt", i, strings.Repeat("x", 39)) }
	var base int64
	for i := 0; i < configsvc.MaxFilesPerService; i += configsvc.MaxFilesPerChangeset {
		var cs []configsvc.Change
		for j := i; j < min(i+configsvc.MaxFilesPerChangeset, configsvc.MaxFilesPerService); j++ {
			cs = append(cs, put(name(j), "x"))
		}
		mustPublish(ctx, t, st, ref, base, cs...)
		base++
	}
	full := base

	mustPublish(ctx, t, st, ref, base, put(name(0), "y"))
	base++

	_, err := st.Publish(ctx, ref, configsvc.Changeset{Base: base, Changes: []configsvc.Change{put("one-more.txt", "z")}})
	wantErr(t, "Publish of one file over the limit", err, configsvc.ErrTooLarge)
	var le *configsvc.LimitError
	if !errors.As(err, &le) || le.Limit != configsvc.MaxFilesPerService || le.Size != configsvc.MaxFilesPerService+1 || le.Unit != "files" {
		t.Fatalf("error %v, want a *configsvc.LimitError of %d files over the limit of %d", err, configsvc.MaxFilesPerService+1, configsvc.MaxFilesPerService)
	}
	if h := mustHead(ctx, t, st, ref); h.Revision != base || len(h.Files) != configsvc.MaxFilesPerService {
		t.Fatalf("after the refused publish: head %d with %d files, want %d with %d", h.Revision, len(h.Files), base, configsvc.MaxFilesPerService)
	}

	mustPublish(ctx, t, st, ref, base, del(name(1)), put("renamed.txt", "r"))
	base++
	h := mustHead(ctx, t, st, ref)
	if h.Revision != base || len(h.Files) != configsvc.MaxFilesPerService || h.Files[name(0)].Revision != full+1 ||
		h.Files[name(0)].Size != 1 || h.Files["renamed.txt"].Revision != base {
		t.Fatalf("Head = revision %d, %d files, %s %+v; want %d, %d files, %s at %d", h.Revision, len(h.Files), name(0), h.Files[name(0)], base, configsvc.MaxFilesPerService, name(0), full+1)
	}
	snap := mustSnapshot(ctx, t, st, ref, 0)
	if len(snap.Files) != configsvc.MaxFilesPerService || string(snap.Files[name(0)]) != "y" || string(snap.Files[name(2)]) != "x" {
		t.Fatalf("Snapshot has %d files, %s=%q; want %d and y", len(snap.Files), name(0), snap.Files[name(0)], configsvc.MaxFilesPerService)
	}
	if got, _, err := st.File(ctx, ref, name(0), full); err != nil || string(got) != "x" {
		t.Fatalf("File(%s, %d) = %q, %v; want x", name(0), full, got, err)
	}
	if _, _, err := st.File(ctx, ref, name(1), base); !errors.Is(err, configsvc.ErrNotFound) {
		t.Fatalf("File(%s, %d) = %v; want ErrNotFound (deleted)", name(1), base, err)
	}
	if got, _, err := st.File(ctx, ref, name(1), base-1); err != nil || string(got) != "x" {
		t.Fatalf("File(%s, %d) = %q, %v; want x (before its deletion)", name(1), base-1, got, err)
	}
}

// testPruneConverges: a long history of wide revisions (many files with
// long names, each revision rewriting them all) is kept under a large
// retention; the store is reopened with a small one. After one more
// publish, pruning must physically remove the whole backlog, however many
// steps that takes, and what is retained must read back intact.
func (s *suite) testPruneConverges(t *testing.T) {
	if s.opts.OpenWithRetention == nil || s.opts.Reopen == nil || s.opts.StoredRevisions == nil {
		t.Skip("storetest: Options.OpenWithRetention, Reopen or StoredRevisions not set; pruning convergence not checked")
	}
	const (
		files     = 100
		revisions = 110
		keep      = 5
	)
	st := s.opts.OpenWithRetention(t, 200)
	ctx := s.ctx(t)
	ref := configsvc.Service("history")
	mustCreate(ctx, t, st, ref)
	name := func(i int) string { return fmt.Sprintf("%03d-%s.txt", i, strings.Repeat("n", 96)) }
	for n := int64(1); n <= revisions; n++ {
		cs := make([]configsvc.Change, files)
		for i := range cs {
			cs[i] = put(name(i), fmt.Sprint(n))
		}
		mustPublish(ctx, t, st, ref, n-1, cs...)
	}
	if got := s.opts.StoredRevisions(t, st, ref); got != revisions {
		t.Fatalf("%d revisions stored before retention was lowered, want %d", got, revisions)
	}
	st = s.opts.Reopen(t, st, keep)
	mustPublish(ctx, t, st, ref, revisions, put(name(0), "last"))
	head := int64(revisions + 1)
	testkit.Eventually(t, 4*s.opts.Timeout, fmt.Sprintf("pruning after retention was lowered to %d", keep), func() error {
		if got := s.opts.StoredRevisions(t, st, ref); got > keep+16 {
			return fmt.Errorf("%d revisions still stored, want at most %d", got, keep+16)
		}
		return nil
	})
	want := files2(files, name, fmt.Sprint(revisions))
	want[name(0)] = []byte("last")
	wantSnapshot(ctx, t, st, ref, head, want)
	wantSnapshot(ctx, t, st, ref, head-keep+1, files2(files, name, fmt.Sprint(head-keep+1)))
	_, err := st.Snapshot(ctx, ref, head-keep-16)
	wantErr(t, "Snapshot of a pruned revision", err, configsvc.ErrCompacted)
}

// files2 returns n files named by name, all holding content.
func files2(n int, name func(int) string, content string) map[string][]byte {
	m := make(map[string][]byte, n)
	for i := range n {
		m[name(i)] = []byte(content)
	}
	return m
}

// testCountLimits: every collection that grows has a bound, enforced with
// a *CountError naming it, and room is made by removing.
func (s *suite) testCountLimits(t *testing.T) {
	if s.opts.OpenWithLimits == nil {
		t.Skip("storetest: Options.OpenWithLimits not set; count limits not checked")
	}
	limits := configsvc.Limits{Services: 3, LinksPerService: 2, InstancesPerService: 2, RecordsPerCollection: 3}
	st := s.opts.OpenWithLimits(t, limits)
	ctx := s.ctx(t)
	wantCount := func(what string, err error, limit int) {
		t.Helper()
		wantErr(t, what, err, configsvc.ErrTooMany)
		var ce *configsvc.CountError
		if !errors.As(err, &ce) || ce.Limit != int64(limit) {
			t.Fatalf("%s: error %v, want a *configsvc.CountError with limit %d", what, err, limit)
		}
	}

	t.Run("Services", func(t *testing.T) {
		for i := range 3 {
			mustCreate(ctx, t, st, configsvc.Service(fmt.Sprintf("svc-%d", i)))
			mustCreate(ctx, t, st, configsvc.Group(fmt.Sprintf("grp-%d", i)))
		}
		wantCount("Create of a 4th service", st.Create(ctx, configsvc.Service("svc-3")), 3)
		wantCount("Create of a 4th group", st.Create(ctx, configsvc.Group("grp-3")), 3)
		if err := st.Delete(ctx, configsvc.Service("svc-2")); err != nil {
			t.Fatal(err)
		}
		mustCreate(ctx, t, st, configsvc.Service("svc-3"))
		if names, err := st.List(ctx, configsvc.KindService); err != nil || len(names) != 3 {
			t.Fatalf("List = %v, %v; want 3 services", names, err)
		}
	})

	t.Run("Links", func(t *testing.T) {
		for _, g := range []string{"grp-0", "grp-1"} {
			if err := st.Link(ctx, "svc-0", g); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Link(ctx, "svc-0", "grp-1"); err != nil {
			t.Fatalf("linking again at the limit: %v", err)
		}
		wantCount("a 3rd link", st.Link(ctx, "svc-0", "grp-2"), 2)
		if h := mustHead(ctx, t, st, configsvc.Service("svc-0")); len(h.Links) != 2 {
			t.Fatalf("links after the refusal = %v, want 2", h.Links)
		}
		if err := st.Unlink(ctx, "svc-0", "grp-0"); err != nil {
			t.Fatal(err)
		}
		if err := st.Link(ctx, "svc-0", "grp-2"); err != nil {
			t.Fatalf("link after an unlink: %v", err)
		}
	})

	t.Run("Instances", func(t *testing.T) {
		inst := func(id string) configsvc.Instance {
			return configsvc.Instance{Service: "svc-1", ID: id, Addr: "127.0.0.1:1", Status: configsvc.StatusStarting}
		}
		var leases []configsvc.Lease
		for _, id := range []string{"i-1", "i-2"} {
			l, err := st.Register(ctx, inst(id))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			leases = append(leases, l)
		}
		_, err := st.Register(ctx, inst("i-3"))
		wantCount("a 3rd instance", err, 2)
		if err := leases[0].Close(); err != nil {
			t.Fatal(err)
		}
		var l configsvc.Lease
		testkit.Eventually(t, s.opts.Timeout, "Register after a lease closed", func() error {
			var err error
			l, err = st.Register(ctx, inst("i-3"))
			if err != nil && !errors.Is(err, configsvc.ErrTooMany) {
				t.Fatalf("Register after a lease closed: %v", err)
			}
			return err
		})
		t.Cleanup(func() { l.Close() })
	})

	t.Run("Records", func(t *testing.T) {
		rs := st.Records()
		for _, id := range []string{"a", "b", "c"} {
			if err := rs.Put(ctx, "tokens", id, []byte(id)); err != nil {
				t.Fatal(err)
			}
		}
		wantCount("Put of a 4th record", rs.Put(ctx, "tokens", "d", []byte("d")), 3)
		wantCount("Create of a 4th record", rs.Create(ctx, "tokens", "d", []byte("d")), 3)
		if err := rs.Put(ctx, "tokens", "b", []byte("replaced")); err != nil {
			t.Fatalf("replacing a record in a full collection: %v", err)
		}
		if err := rs.Put(ctx, "pins", "d", []byte("d")); err != nil {
			t.Fatalf("another collection is not full: %v", err)
		}
		if err := rs.Delete(ctx, "tokens", "a"); err != nil {
			t.Fatal(err)
		}
		if err := rs.Put(ctx, "tokens", "d", []byte("d")); err != nil {
			t.Fatalf("Put after a Delete: %v", err)
		}
	})
}

// testCreateRecord: Create makes a record only when none has its id, so
// that of several servers exactly one claims it.
func (s *suite) testCreateRecord(t *testing.T) {
	st, ctx := s.open(t)
	rs := st.Records()
	if err := rs.Create(ctx, "claims", "k1", []byte("first")); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Create of an existing record", rs.Create(ctx, "claims", "k1", []byte("second")), configsvc.ErrConflict)
	if got, err := rs.Get(ctx, "claims", "k1"); err != nil || string(got) != "first" {
		t.Fatalf("Get = %q, %v; want the first Create's data", got, err)
	}
	const racers = 8
	errs := make(chan error, racers)
	for i := range racers {
		go func() { errs <- rs.Create(ctx, "claims", "k2", []byte(fmt.Sprint("racer ", i))) }()
	}
	won := 0
	for range racers {
		err := <-errs
		switch {
		case err == nil:
			won++
		case !errors.Is(err, configsvc.ErrConflict):
			t.Fatalf("racing Create: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d racing Creates succeeded, want exactly 1", won, racers)
	}
}

package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// Options configures RunWithOptions.
type Options struct {
	// Open returns a new, empty store for one subtest. It registers the
	// store's Close with t.Cleanup. The suite closes some stores itself, so
	// the cleanup may call Close a second time; that call must not panic (its
	// error is ignored by the suite). Required.
	Open func(t *testing.T) configsvc.Store
	// OpenWithRetention returns a new, empty store that keeps only the newest
	// n revisions of each service and group. When nil the retention subtests
	// are skipped with a message saying so.
	OpenWithRetention func(t *testing.T, n int) configsvc.Store
	// OpenAt returns a new, empty store whose clock (the time it records in
	// revisions and heads) is now. When nil the Time subtests that need a
	// clock of their own are skipped with a message saying so.
	OpenAt func(t *testing.T, now func() time.Time) configsvc.Store
	// OpenPair returns two stores on the same new, empty data, as two admin
	// servers on one ZooKeeper ensemble are, with clocks nowA and nowB. A
	// backend that allows one store per data set (bbolt) returns the same
	// store twice, with clock nowA. When nil the TwoStores subtests are
	// skipped with a message saying so.
	OpenPair func(t *testing.T, nowA, nowB func() time.Time) (a, b configsvc.Store)
	// InterruptDelete leaves ref in st as a Delete that stopped half way
	// (a crash, a lost connection) leaves it. A backend whose Delete is one
	// transaction passes a function that deletes ref. When nil the
	// InterruptedDelete subtest is skipped with a message saying so.
	InterruptDelete func(t *testing.T, st configsvc.Store, ref configsvc.Ref)
	// OpenWithLimits returns a new, empty store enforcing l. When nil the
	// count-limit subtests are skipped with a message saying so.
	OpenWithLimits func(t *testing.T, l configsvc.Limits) configsvc.Store
	// Reopen closes st (opened by OpenWithRetention) and opens the same data
	// again, keeping n revisions of each service and group: a restart with
	// a lower retention. With StoredRevisions it enables the subtest that
	// lowers retention on a long history; when either is nil that subtest
	// is skipped with a message saying so.
	Reopen func(t *testing.T, st configsvc.Store, n int) configsvc.Store
	// StoredRevisions returns how many revisions of ref st physically holds,
	// compacted or not: what pruning removes.
	StoredRevisions func(t *testing.T, st configsvc.Store, ref configsvc.Ref) int
	// Timeout bounds each wait for a watch event or instance list, and each
	// subtest's context. Zero means 20 seconds.
	Timeout time.Duration
	// SkipLeakCheck turns off the goroutine-leak check of the Close subtest,
	// for backends whose client library keeps process-wide goroutines.
	SkipLeakCheck bool
}

// Run runs the whole conformance suite against stores returned by open,
// with no retention subtests (see RunWithOptions).
func Run(t *testing.T, open func(t *testing.T) configsvc.Store) {
	t.Helper()
	RunWithOptions(t, Options{Open: open})
}

// RunWithOptions runs the whole conformance suite as named subtests of t.
// Subtests run one after another (never in parallel), each on a fresh store.
func RunWithOptions(t *testing.T, opts Options) {
	t.Helper()
	if opts.Open == nil {
		t.Fatal("storetest: Options.Open is required")
	}
	if opts.Timeout == 0 {
		opts.Timeout = 20 * time.Second
	}
	s := &suite{opts: opts}
	t.Run("Refs", s.testRefs)
	t.Run("Publish", s.testPublish)
	t.Run("Limits", s.testLimits)
	t.Run("Validating", s.testValidating)
	t.Run("Read", s.testRead)
	t.Run("Revisions", s.testRevisions)
	t.Run("Rollback", s.testRollback)
	t.Run("Links", s.testLinks)
	t.Run("Instances", s.testInstances)
	t.Run("Watch", s.testWatch)
	t.Run("Identity", s.testIdentity)
	t.Run("Grays", s.testGrays)
	t.Run("Retention", s.testRetention)
	t.Run("Growth", s.testGrowth)
	t.Run("Records", s.testRecords)
	t.Run("Import", s.testImport)
	t.Run("Concurrency", s.testConcurrency)
	t.Run("Time", s.testTime)
	t.Run("TwoStores", s.testTwoStores)
	t.Run("Close", s.testClose)
}

type suite struct {
	opts Options
}

// open returns a fresh store and a context bounded by the suite timeout.
func (s *suite) open(t *testing.T) (configsvc.Store, context.Context) {
	t.Helper()
	st := s.opts.Open(t)
	if st == nil {
		t.Fatal("storetest: Open returned a nil store")
	}
	return st, s.ctx(t)
}

func (s *suite) ctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 4*s.opts.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// mustCreate creates ref or fails the test.
func mustCreate(ctx context.Context, t *testing.T, st configsvc.Store, ref configsvc.Ref) {
	t.Helper()
	if err := st.Create(ctx, ref); err != nil {
		t.Fatalf("Create(%s): %v", ref, err)
	}
}

// mustPublish publishes changes on top of base or fails the test.
func mustPublish(ctx context.Context, t *testing.T, st configsvc.Store, ref configsvc.Ref, base int64, changes ...configsvc.Change) configsvc.Revision {
	t.Helper()
	cs := configsvc.Changeset{Base: base, Author: "tester", Message: fmt.Sprintf("revision %d", base+1), Changes: changes}
	rev, err := st.Publish(ctx, ref, cs)
	if err != nil {
		t.Fatalf("Publish(%s, base %d): %v", ref, base, err)
	}
	if rev.Number != base+1 {
		t.Fatalf("Publish(%s, base %d) = revision %d, want %d", ref, base, rev.Number, base+1)
	}
	return rev
}

// put is a Change that writes content to file.
func put(file, content string) configsvc.Change {
	return configsvc.Change{File: file, Content: []byte(content)}
}

// del is a Change that deletes file.
func del(file string) configsvc.Change {
	return configsvc.Change{File: file, Delete: true}
}

func mustHead(ctx context.Context, t *testing.T, st configsvc.Store, ref configsvc.Ref) configsvc.Head {
	t.Helper()
	h, err := st.Head(ctx, ref)
	if err != nil {
		t.Fatalf("Head(%s): %v", ref, err)
	}
	return h
}

func mustSnapshot(ctx context.Context, t *testing.T, st configsvc.Store, ref configsvc.Ref, rev int64) configsvc.Snapshot {
	t.Helper()
	snap, err := st.Snapshot(ctx, ref, rev)
	if err != nil {
		t.Fatalf("Snapshot(%s, %d): %v", ref, rev, err)
	}
	return snap
}

// wantErr fails the test unless err matches target with errors.Is.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want one matching %q", what, err, target)
	}
}

// files turns name/content pairs into a snapshot's file map.
func files(kv ...string) map[string][]byte {
	m := make(map[string][]byte, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = []byte(kv[i+1])
	}
	return m
}

// equalFiles compares two snapshot file maps.
func equalFiles(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

func showFiles(m map[string][]byte) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString("{")
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		c := m[n]
		if len(c) > 40 {
			fmt.Fprintf(&b, "%s: %d bytes", n, len(c))
		} else {
			fmt.Fprintf(&b, "%s: %q", n, c)
		}
	}
	b.WriteString("}")
	return b.String()
}

// wantSnapshot fails unless the snapshot of ref at rev holds exactly want.
func wantSnapshot(ctx context.Context, t *testing.T, st configsvc.Store, ref configsvc.Ref, rev int64, want map[string][]byte) {
	t.Helper()
	snap := mustSnapshot(ctx, t, st, ref, rev)
	if !equalFiles(snap.Files, want) {
		t.Fatalf("Snapshot(%s, %d).Files = %s, want %s", ref, rev, showFiles(snap.Files), showFiles(want))
	}
}

// wantUnchanged fails unless ref's head is still at revision head with the
// given files, and revision head+1 does not exist: a failed publish wrote
// nothing.
func wantUnchanged(ctx context.Context, t *testing.T, st configsvc.Store, ref configsvc.Ref, head int64, want map[string][]byte) {
	t.Helper()
	h := mustHead(ctx, t, st, ref)
	if h.Revision != head {
		t.Fatalf("after a failed publish, Head(%s).Revision = %d, want %d", ref, h.Revision, head)
	}
	wantSnapshot(ctx, t, st, ref, 0, want)
	_, err := st.Revision(ctx, ref, head+1)
	wantErr(t, fmt.Sprintf("after a failed publish, Revision(%s, %d)", ref, head+1), err, configsvc.ErrNotFound)
	revs, err := st.Revisions(ctx, ref, 0, 1000)
	if err != nil {
		t.Fatalf("Revisions(%s): %v", ref, err)
	}
	if int64(len(revs)) != head {
		t.Fatalf("after a failed publish, Revisions(%s) has %d entries, want %d", ref, len(revs), head)
	}
}

// next returns the next watch event that is not a transient ErrUnavailable
// report, failing the test if none arrives within the suite timeout. ok is
// false when the channel was closed.
func (s *suite) next(t *testing.T, ch <-chan configsvc.Event) (ev configsvc.Event, ok bool) {
	t.Helper()
	timer := time.NewTimer(s.opts.Timeout)
	defer timer.Stop()
	for {
		select {
		case ev, ok = <-ch:
			if ok && ev.Err != nil && errors.Is(ev.Err, configsvc.ErrUnavailable) {
				continue
			}
			return ev, ok
		case <-timer.C:
			t.Fatalf("no watch event within %v", s.opts.Timeout)
			return ev, false
		}
	}
}

// nextRevision returns the next revision event, skipping LinksChanged and
// GraysChanged events,
// and fails on an error event or a closed channel.
func (s *suite) nextRevision(t *testing.T, ch <-chan configsvc.Event) *configsvc.Revision {
	t.Helper()
	for {
		ev, ok := s.next(t, ch)
		if !ok {
			t.Fatal("watch channel closed, want a revision event")
		}
		if ev.Err != nil {
			t.Fatalf("watch event error %v, want a revision", ev.Err)
		}
		if ev.Revision != nil {
			return ev.Revision
		}
		if !ev.LinksChanged && !ev.GraysChanged {
			t.Fatalf("empty watch event %+v", ev)
		}
	}
}

// wantRevisions reads revisions from..to (inclusive) from ch and fails unless
// they arrive in order, each with the content in want[n] (when present).
func (s *suite) wantRevisions(t *testing.T, ch <-chan configsvc.Event, from, to int64, want map[int64][]configsvc.Change) {
	t.Helper()
	for n := from; n <= to; n++ {
		rev := s.nextRevision(t, ch)
		if rev.Number != n {
			t.Fatalf("watch delivered revision %d, want %d (in order, none skipped)", rev.Number, n)
		}
		// Every watch subtest publishes through mustPublish.
		if rev.Author != "tester" || rev.Message != fmt.Sprintf("revision %d", n) || rev.Time.IsZero() {
			t.Fatalf("watched revision %d: author %q, message %q, time %v; want tester, %q and the publish time", n, rev.Author, rev.Message, rev.Time, fmt.Sprintf("revision %d", n))
		}
		if changes, ok := want[n]; ok {
			wantChanges(t, fmt.Sprintf("watched revision %d", n), rev.Changes, changes)
		}
	}
}

// wantChanges compares changes with content, in order.
func wantChanges(t *testing.T, what string, got, want []configsvc.Change) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d changes %v, want %d", what, len(got), got, len(want))
	}
	sorted := append([]configsvc.Change(nil), got...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].File < sorted[j].File })
	exp := append([]configsvc.Change(nil), want...)
	sort.Slice(exp, func(i, j int) bool { return exp[i].File < exp[j].File })
	for i := range exp {
		g, w := sorted[i], exp[i]
		if g.File != w.File || g.Delete != w.Delete || !bytes.Equal(g.Content, w.Content) {
			t.Fatalf("%s: change %d = {%s delete=%v %q}, want {%s delete=%v %q}", what, i, g.File, g.Delete, g.Content, w.File, w.Delete, w.Content)
		}
	}
}

// wantClosed fails unless ch is closed within the suite timeout; events
// still queued before the close are drained and ignored.
func (s *suite) wantClosed(t *testing.T, ch <-chan configsvc.Event) {
	t.Helper()
	timer := time.NewTimer(s.opts.Timeout)
	defer timer.Stop()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timer.C:
			t.Fatalf("watch channel not closed within %v", s.opts.Timeout)
		}
	}
}

// wantErrEventThenClose reads events until one carries an error; it must
// match target and be followed by the channel closing. Revision events
// before it are allowed.
func (s *suite) wantErrEventThenClose(t *testing.T, ch <-chan configsvc.Event, target error) {
	t.Helper()
	for {
		ev, ok := s.next(t, ch)
		if !ok {
			t.Fatalf("watch channel closed without an error event matching %q", target)
		}
		if ev.Err == nil {
			continue
		}
		if !errors.Is(ev.Err, target) {
			t.Fatalf("watch error event %v, want one matching %q", ev.Err, target)
		}
		break
	}
	s.wantClosed(t, ch)
}

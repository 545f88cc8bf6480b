package rollout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/rollout"
	"github.com/sluicehq/sluice/configsvc/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// audits collects the changes a Driver reports.
type audits struct {
	mu      sync.Mutex
	changes []rollout.Change
}

func (a *audits) record(_ context.Context, c rollout.Change) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.changes = append(a.changes, c)
}

// actions returns "action@step" for every change, in order.
func (a *audits) actions() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, len(a.changes))
	for i, c := range a.changes {
		out[i] = fmt.Sprintf("%s@%d", strings.TrimPrefix(c.Action, "gray.rollout."), c.Step)
	}
	return out
}

// env is service orders (a.yaml at revision 1) on a bbolt store with
// instances orders-00 … orders-NN registered, a fake clock, and a Driver.
type env struct {
	t      *testing.T
	ctx    context.Context
	st     configsvc.Store
	clock  *testkit.Clock
	audits *audits
	d      *rollout.Driver
	ref    configsvc.Ref
	leases map[string]configsvc.Lease
	insts  map[string]configsvc.Instance
}

func newEnv(t *testing.T, instances int) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, st: configsvc.Validating(bolttest.MustOpen(t, boltstore.Options{}), format.Validator{}),
		clock: testkit.NewClock(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)), audits: &audits{}, ref: configsvc.Service("orders"),
		leases: map[string]configsvc.Lease{}, insts: map[string]configsvc.Instance{}}
	if err := e.st.Create(ctx, e.ref); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Publish(ctx, e.ref, configsvc.Changeset{Changes: []configsvc.Change{{File: "a.yaml", Content: []byte("pool: 10\n")}}}); err != nil {
		t.Fatal(err)
	}
	for i := range instances {
		in := configsvc.Instance{Service: "orders", ID: fmt.Sprintf("orders-%02d", i), Addr: fmt.Sprintf("127.0.0.1:%d", 9000+i), Status: configsvc.StatusApplied, Revision: 1}
		l, err := e.st.Register(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		e.leases[in.ID], e.insts[in.ID] = l, in
	}
	e.d = e.driver()
	return e
}

// driver returns a new Driver on e's store and clock (a server taking
// over: it knows nothing but the store).
func (e *env) driver() *rollout.Driver {
	e.t.Helper()
	d, err := rollout.New(rollout.Config{Store: e.st, Now: e.clock.Now, Audit: e.audits.record})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// newGray creates a gray on main's head writing a.yaml, with an empty
// selector.
func (e *env) newGray() configsvc.Gray {
	e.t.Helper()
	h, err := e.st.Head(e.ctx, e.ref)
	if err != nil {
		e.t.Fatal(err)
	}
	g, err := e.st.CreateGray(e.ctx, e.ref, configsvc.Gray{Name: "bigger pool", BaseRevision: h.Revision,
		Changes: []configsvc.Change{{File: "a.yaml", Content: []byte("pool: 50\n")}}})
	if err != nil {
		e.t.Fatal(err)
	}
	return g
}

// start starts a rollout of g with steps "percent:bake" and the gates.
func (e *env) start(g configsvc.Gray, maxRejected int, maxErrorRate float64, steps ...string) configsvc.Gray {
	e.t.Helper()
	spec := configsvc.Rollout{MaxRejected: maxRejected, MaxErrorRate: maxErrorRate}
	for _, s := range steps {
		pct, bake, _ := strings.Cut(s, ":")
		var p float64
		fmt.Sscan(pct, &p)
		d, err := time.ParseDuration(bake)
		if err != nil {
			e.t.Fatal(err)
		}
		spec.Steps = append(spec.Steps, configsvc.RolloutStep{Percent: p, Bake: configsvc.Duration(d)})
	}
	out, err := e.st.UpdateGray(e.ctx, e.ref, g.ID, g.Version, func(x *configsvc.Gray) error {
		return configsvc.StartRollout(x, spec, e.clock.Now(), "started by test")
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// report sets what instance id reports about gray.
func (e *env) report(id, gray string, status configsvc.GrayApplyStatus, reason string) {
	e.t.Helper()
	in := e.insts[id]
	in.Grays = map[string]configsvc.GrayStatus{gray: {Status: status, Reason: reason, Version: 1}}
	if err := e.leases[id].Update(e.ctx, in); err != nil {
		e.t.Fatal(err)
	}
	e.insts[id] = in
}

// applyAll makes every instance report gray applied (the instances out
// of the cohort report nothing in real life; their reports are ignored).
func (e *env) applyAll(gray string) {
	e.t.Helper()
	for id := range e.insts {
		e.report(id, gray, configsvc.GrayApplied, "")
	}
}

// tick runs one check and fails on an error.
func (e *env) tick() {
	e.t.Helper()
	if err := e.d.Tick(e.ctx); err != nil {
		e.t.Fatalf("Tick: %v", err)
	}
}

func (e *env) gray(id string) configsvc.Gray {
	e.t.Helper()
	g, err := e.st.Gray(e.ctx, e.ref, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return g
}

// where returns "state step percent" of the rollout of gray id, and the
// gray's state.
func (e *env) where(id string) string {
	e.t.Helper()
	g := e.gray(id)
	st := g.Rollout.State
	return fmt.Sprintf("%s %s %d %v", g.State, st.State, st.Step, st.Percent)
}

func (e *env) want(id, where string) {
	e.t.Helper()
	if got := e.where(id); got != where {
		e.t.Fatalf("gray %s: %s, want %s (reason %q)", id, got, where, e.gray(id).Rollout.State.Reason)
	}
}

// proxy publishes the state of proxy id: route "orders" with the given
// counters per instance ("requests/failures").
func (e *env) proxy(id string, updated time.Time, counters map[string]string) {
	e.t.Helper()
	st := configsvc.ProxyState{ID: id, Updated: updated, Routes: []configsvc.RouteState{{Name: "orders",
		Upstream: configsvc.UpstreamState{Service: "orders", Balancer: "round_robin"}}}}
	for inst, c := range counters {
		var req, fail uint64
		fmt.Sscanf(c, "%d/%d", &req, &fail)
		st.Routes[0].Instances = append(st.Routes[0].Instances, configsvc.InstanceState{ID: inst, Requests: req, Failures: fail})
	}
	b, _ := json.Marshal(st)
	if err := e.st.Records().Put(e.ctx, configsvc.ProxyStateCollection, id, b); err != nil {
		e.t.Fatal(err)
	}
}

// cohort returns the ids of the instances in gray id's cohort at percent.
func (e *env) cohort(id string, percent float64) []string {
	var out []string
	for inst := range e.insts {
		if (configsvc.Selector{Percent: percent}).Matches(id, configsvc.Instance{ID: inst}) {
			out = append(out, inst)
		}
	}
	slices.Sort(out)
	return out
}

func TestRolloutPromotesAfterTheLastCleanBake(t *testing.T) {
	e := newEnv(t, 20)
	g := e.start(e.newGray(), 0, 0.02, "10:1m", "50:2m", "100:1m")
	e.applyAll(g.ID)

	e.tick()
	e.want(g.ID, "active baking 0 10")
	if sel := e.gray(g.ID).Selector.Percent; sel != 10 {
		t.Fatalf("selector percent %v during step 1", sel)
	}
	e.clock.Advance(59 * time.Second)
	e.tick()
	e.want(g.ID, "active baking 0 10") // the bake is not over
	e.clock.Advance(time.Second)
	e.tick()
	e.want(g.ID, "active applying 1 50")
	got := e.gray(g.ID)
	if got.Selector.Percent != 50 || !strings.Contains(got.Rollout.State.Reason, "step 1 (10 %) baked clean for 1m0s: no traffic seen") {
		t.Fatalf("after step 1: selector %v, reason %q", got.Selector.Percent, got.Rollout.State.Reason)
	}
	e.tick()
	e.want(g.ID, "active baking 1 50")
	e.clock.Advance(2 * time.Minute)
	e.tick()
	e.tick()
	e.want(g.ID, "active baking 2 100")
	e.clock.Advance(time.Minute)
	e.tick()

	got = e.gray(g.ID)
	if got.State != configsvc.GrayPromoted || got.EndedRevision != 2 || got.Rollout.State.State != configsvc.RolloutPromoted ||
		!strings.Contains(got.EndReason, "all 3 steps baked clean") {
		t.Fatalf("after the last bake: %s, revision %d, rollout %+v, reason %q", got.State, got.EndedRevision, got.Rollout.State, got.EndReason)
	}
	b, _, err := e.st.File(e.ctx, e.ref, "a.yaml", 0)
	if err != nil || string(b) != "pool: 50\n" {
		t.Fatalf("main's a.yaml after the promote: %q, %v", b, err)
	}
	rev, err := e.st.Revision(e.ctx, e.ref, 2)
	if err != nil || rev.Author != rollout.DefaultAuthor || !strings.Contains(rev.Message, "bigger pool (rollout: 3 steps baked clean)") {
		t.Fatalf("promote revision %+v, %v", rev, err)
	}
	want := []string{"bake@0", "step@1", "bake@1", "step@2", "bake@2", "promote@2"}
	if got := e.audits.actions(); !slices.Equal(got, want) {
		t.Fatalf("audited %v, want %v", got, want)
	}
	e.tick() // nothing left to drive
	if n := len(e.audits.actions()); n != len(want) {
		t.Fatalf("a check after the promote changed something: %v", e.audits.actions())
	}
}

func TestRolloutWaitsForTheCohortToApply(t *testing.T) {
	e := newEnv(t, 10)
	g := e.start(e.newGray(), 0, 0.02, "100:1m")
	e.tick()
	e.want(g.ID, "active applying 0 100")
	for i, id := range slices.Sorted(maps.Keys(e.insts)) {
		if i == 0 {
			continue
		}
		e.report(id, g.ID, configsvc.GrayApplied, "")
	}
	e.clock.Advance(30 * time.Second)
	e.tick()
	e.want(g.ID, "active applying 0 100") // orders-00 has not applied it
	e.report("orders-00", g.ID, configsvc.GrayApplied, "")
	e.tick()
	e.want(g.ID, "active baking 0 100")
	if r := e.gray(g.ID).Rollout.State.Reason; !strings.Contains(r, "all 10 cohort instances applied the gray") {
		t.Fatalf("reason %q", r)
	}
}

func TestRolloutAbortsOnApplyTimeout(t *testing.T) {
	e := newEnv(t, 4)
	g := e.start(e.newGray(), 0, 0.02, "100:1m")
	e.report("orders-00", g.ID, configsvc.GrayApplied, "")
	e.report("orders-01", g.ID, configsvc.GrayApplied, "")
	e.clock.Advance(configsvc.DefaultRolloutApplyTimeout - time.Second)
	e.tick()
	e.want(g.ID, "active applying 0 100")
	e.clock.Advance(time.Second)
	e.tick()
	got := e.gray(g.ID)
	f := got.Rollout.State.Failed
	if got.State != configsvc.GrayAbandoned || got.Rollout.State.State != configsvc.RolloutAborted || f == nil ||
		f.Gate != configsvc.GateApplyTimeout || !slices.Equal(f.Instances, []string{"orders-02", "orders-03"}) || f.Figures["pending"] != 2 ||
		!strings.Contains(got.EndReason, "2 of 4 cohort instances did not apply the gray within 1m0s") {
		t.Fatalf("after the apply timeout: %s, rollout %+v, failed %+v, reason %q", got.State, got.Rollout.State, f, got.EndReason)
	}
	if h, _ := e.st.Head(e.ctx, e.ref); len(h.Grays) != 0 || h.Revision != 1 {
		t.Fatalf("head after the abort: revision %d, grays %v", h.Revision, h.Grays)
	}
	if a := e.audits.actions(); !slices.Equal(a, []string{"abort@0"}) {
		t.Fatalf("audited %v", a)
	}
}

func TestRolloutAbortsOnRejections(t *testing.T) {
	e := newEnv(t, 5)
	g := e.start(e.newGray(), 1, 0.02, "100:10m")
	e.applyAll(g.ID)
	e.tick()
	e.want(g.ID, "active baking 0 100")
	// One rejection is allowed (max_rejected 1), during the bake too.
	e.report("orders-03", g.ID, configsvc.GrayRejected, "pool must be at most 20")
	e.clock.Advance(time.Minute)
	e.tick()
	e.want(g.ID, "active baking 0 100")
	e.report("orders-01", g.ID, configsvc.GrayRejected, "pool must be at most 20")
	e.tick()
	got := e.gray(g.ID)
	f := got.Rollout.State.Failed
	if got.State != configsvc.GrayAbandoned || f == nil || f.Gate != configsvc.GateAcks || !slices.Equal(f.Instances, []string{"orders-01", "orders-03"}) ||
		f.Figures["rejected"] != 2 || f.Figures["max_rejected"] != 1 || !strings.Contains(got.EndReason, "pool must be at most 20") {
		t.Fatalf("after two rejections: %s, failed %+v, reason %q", got.State, f, got.EndReason)
	}
}

func TestRolloutTrafficGate(t *testing.T) {
	e := newEnv(t, 20)
	g := e.start(e.newGray(), 0, 0.02, "50:5m", "100:1m")
	e.applyAll(g.ID)
	in := e.cohort(g.ID, 50)
	var out []string
	for id := range e.insts {
		if !slices.Contains(in, id) {
			out = append(out, id)
		}
	}
	if len(in) == 0 || len(out) == 0 {
		t.Fatalf("cohort %v, rest %v: the test needs both", in, out)
	}
	counts := func(cohort, rest string) map[string]string {
		m := map[string]string{}
		for _, id := range in {
			m[id] = cohort
		}
		for _, id := range out {
			m[id] = rest
		}
		return m
	}
	e.proxy("proxy-1", e.clock.Now(), counts("1000/50", "1000/50")) // before the bake: not counted
	e.proxy("proxy-old", e.clock.Now().Add(-time.Hour), counts("0/0", "0/0"))
	e.tick()
	e.want(g.ID, "active baking 0 50")

	// A clean minute: 0.1 % errors in the cohort, as the rest.
	e.clock.Advance(time.Minute)
	e.proxy("proxy-1", e.clock.Now(), counts("2000/51", "2000/51"))
	e.tick()
	e.want(g.ID, "active baking 0 50")
	// A proxy whose state is stale is not read, whatever it says.
	e.proxy("proxy-old", e.clock.Now().Add(-time.Hour), counts("9999/9999", "0/0"))
	e.tick()
	e.want(g.ID, "active baking 0 50")

	// One cohort instance starts answering 500s.
	bad := in[0]
	c := counts("2000/51", "2000/51")
	c[bad] = "2500/551"
	e.clock.Advance(time.Minute)
	e.proxy("proxy-1", e.clock.Now(), c)
	e.tick()
	got := e.gray(g.ID)
	f := got.Rollout.State.Failed
	if got.State != configsvc.GrayAbandoned || f == nil || f.Gate != configsvc.GateTraffic || !slices.Equal(f.Instances, []string{bad}) {
		t.Fatalf("after 500s from %s: %s, failed %+v, reason %q", bad, got.State, f, got.EndReason)
	}
	wantReq := float64(len(in)*1000 + 500)
	wantRate := float64(len(in)-1+501) / wantReq
	if f.Figures["cohort_requests"] != wantReq || fmt.Sprintf("%.6f", f.Figures["cohort_error_rate"]) != fmt.Sprintf("%.6f", wantRate) ||
		f.Figures["max_error_rate"] != 0.02 || f.Figures["rest_requests"] != float64(len(out)*1000) {
		t.Fatalf("figures %v; want cohort %v requests at %.4f", f.Figures, wantReq, wantRate)
	}
	if !strings.Contains(got.EndReason, "traffic gate failed at step 1 (50 %)") {
		t.Fatalf("reason %q", got.EndReason)
	}
}

func TestRolloutTrafficCountsFromARestartedCounter(t *testing.T) {
	e := newEnv(t, 4)
	g := e.start(e.newGray(), 0, 0.5, "100:5m")
	e.applyAll(g.ID)
	e.proxy("proxy-1", e.clock.Now(), map[string]string{"orders-00": "5000/0"})
	e.tick()
	e.want(g.ID, "active baking 0 100")
	// The proxy restarted: its counter starts over below the baseline.
	e.clock.Advance(time.Minute)
	e.proxy("proxy-1", e.clock.Now(), map[string]string{"orders-00": "10/9"})
	e.tick()
	if f := e.gray(g.ID).Rollout.State.Failed; f == nil || f.Figures["cohort_requests"] != 10 || f.Figures["cohort_failures"] != 9 {
		t.Fatalf("after a counter restart: failed %+v", f)
	}
}

func TestRolloutResumesFromTheRecordedStep(t *testing.T) {
	e := newEnv(t, 10)
	g := e.start(e.newGray(), 0, 0.02, "10:1m", "50:1m", "100:1m")
	e.applyAll(g.ID)
	e.tick()
	e.clock.Advance(time.Minute)
	e.tick()
	e.tick()
	e.want(g.ID, "active baking 1 50")

	// This driver stops; another one (a server that took over, or this
	// one restarted) continues from step 2, not from the start.
	e.d = e.driver()
	e.clock.Advance(30 * time.Second)
	e.tick()
	e.want(g.ID, "active baking 1 50") // the recorded bake is not over
	e.clock.Advance(30 * time.Second)
	e.tick()
	e.want(g.ID, "active applying 2 100")
	e.tick()
	e.clock.Advance(time.Minute)
	e.tick()
	if got := e.gray(g.ID); got.State != configsvc.GrayPromoted {
		t.Fatalf("after the last step: %s", got.State)
	}
	if a := e.audits.actions(); !slices.Equal(a, []string{"bake@0", "step@1", "bake@1", "step@2", "bake@2", "promote@2"}) {
		t.Fatalf("audited %v", a)
	}
}

func TestRolloutFinishesAnInterruptedAbort(t *testing.T) {
	e := newEnv(t, 2)
	g := e.start(e.newGray(), 0, 0.02, "100:1m")
	// A driver recorded the abort and stopped before the abandon.
	failed := &configsvc.GateFailure{Gate: configsvc.GateAcks, Instances: []string{"orders-01"}}
	g, err := e.st.UpdateGray(e.ctx, e.ref, g.ID, g.Version, func(x *configsvc.Gray) error {
		x.Rollout.State.State, x.Rollout.State.Reason, x.Rollout.State.Failed = configsvc.RolloutAborted, "acks gate failed", failed
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.tick()
	got := e.gray(g.ID)
	if got.State != configsvc.GrayAbandoned || got.EndReason != "acks gate failed" || got.Rollout.State.Failed == nil || got.Rollout.State.Failed.Gate != configsvc.GateAcks {
		t.Fatalf("after the check: %s, reason %q, rollout %+v", got.State, got.EndReason, got.Rollout.State)
	}
}

func TestRolloutLeavesHandEndedGraysAlone(t *testing.T) {
	e := newEnv(t, 2)
	g := e.start(e.newGray(), 0, 0.02, "100:1m")
	e.tick() // tracked
	if _, _, err := e.st.EndGray(e.ctx, e.ref, g.ID, g.Version, configsvc.GrayEnd{State: configsvc.GrayAbandoned, Reason: "by hand"}); err != nil {
		t.Fatal(err)
	}
	e.applyAll(g.ID)
	e.clock.Advance(time.Hour)
	e.tick()
	if got := e.gray(g.ID); got.State != configsvc.GrayAbandoned || got.EndReason != "by hand" {
		t.Fatalf("a gray abandoned by hand: %s %q", got.State, got.EndReason)
	}
	if a := e.audits.actions(); len(a) != 0 {
		t.Fatalf("the driver changed a gray it should have left: %v", a)
	}
}

// fakeLeader grants leadership when the test says so.
type fakeLeader struct {
	grant chan chan struct{}
}

func (l *fakeLeader) Campaign(ctx context.Context, name string) (<-chan struct{}, error) {
	select {
	case lost := <-l.grant:
		return lost, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestRunDrivesOnlyWhileLeading(t *testing.T) {
	e := newEnv(t, 2)
	leader := &fakeLeader{grant: make(chan chan struct{})}
	d, err := rollout.New(rollout.Config{Store: e.st, Leader: leader, Now: e.clock.Now, Interval: 10 * time.Millisecond, Audit: e.audits.record})
	if err != nil {
		t.Fatal(err)
	}
	g := e.start(e.newGray(), 0, 0.02, "100:0s")
	e.applyAll(g.ID)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	time.Sleep(100 * time.Millisecond)
	if d.Leading() || e.gray(g.ID).Rollout.State.State != configsvc.RolloutApplying {
		t.Fatal("the driver drove before it led")
	}
	lost := make(chan struct{})
	leader.grant <- lost
	testkit.Eventually(t, 10*time.Second, "the rollout promoted", func() error {
		if got := e.gray(g.ID); got.State != configsvc.GrayPromoted {
			return fmt.Errorf("gray %s, rollout %s", got.State, got.Rollout.State.State)
		}
		return nil
	})
	if !d.Leading() {
		t.Fatal("Leading is false while leading")
	}
	close(lost)
	testkit.EventuallyTrue(t, 10*time.Second, "leadership lost", func() bool { return !d.Leading() })
	// It campaigns again: a second rollout waits for the next grant.
	g2 := e.start(e.newGray(), 0, 0.02, "100:0s")
	e.applyAll(g2.ID)
	d.Kick()
	time.Sleep(100 * time.Millisecond)
	if got := e.gray(g2.ID); got.Rollout.State.State != configsvc.RolloutApplying {
		t.Fatalf("a driver that lost its leadership drove: %s", got.Rollout.State.State)
	}
	leader.grant <- make(chan struct{})
	testkit.Eventually(t, 10*time.Second, "the second rollout promoted", func() error {
		if got := e.gray(g2.ID); got.State != configsvc.GrayPromoted {
			return fmt.Errorf("gray %s", got.State)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

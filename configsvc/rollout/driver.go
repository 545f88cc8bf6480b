package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// Store is what a Driver reads and writes: the refs, their heads and
// grays, the live instances and the proxies' state records. Every
// configsvc.Store is one; pass a configsvc.ValidatingStore so that a
// promote is validated as a publish.
type Store interface {
	List(ctx context.Context, kind configsvc.Kind) ([]string, error)
	Head(ctx context.Context, ref configsvc.Ref) (configsvc.Head, error)
	Grays(ctx context.Context, ref configsvc.Ref) ([]configsvc.Gray, error)
	UpdateGray(ctx context.Context, ref configsvc.Ref, id string, version int64, fn func(*configsvc.Gray) error) (configsvc.Gray, error)
	EndGray(ctx context.Context, ref configsvc.Ref, id string, version int64, end configsvc.GrayEnd) (configsvc.Gray, *configsvc.Revision, error)
	configsvc.InstanceReader
	Records() configsvc.RecordStore
}

// Defaults for the zero values of Config.
const (
	// DefaultElection is the election a Driver campaigns in.
	DefaultElection = "rollouts"
	// DefaultInterval is how often a Driver checks its rollouts' gates.
	DefaultInterval = time.Second
	// DefaultScanInterval is how often a Driver looks for rollouts it
	// does not drive yet (started through another server).
	DefaultScanInterval = 5 * time.Second
	// DefaultProxyStateFresh is how recently a proxy must have published
	// its state for the traffic gate to read it (proxies publish every
	// 5 s).
	DefaultProxyStateFresh = 30 * time.Second
	// DefaultAuthor is the author of the revisions a Driver's promotes
	// create, and the actor of its audit entries.
	DefaultAuthor = "rollout"
)

// The actions of a Change.
const (
	// ActionBake: the cohort applied the step's percent; the bake began.
	ActionBake = "gray.rollout.bake"
	// ActionStep: a step baked clean; the next one's percent is set.
	ActionStep = "gray.rollout.step"
	// ActionAbort: a gate failed; the gray is abandoned.
	ActionAbort = "gray.rollout.abort"
	// ActionPromote: the last step baked clean; the gray is promoted.
	ActionPromote = "gray.rollout.promote"
)

// Change is one change a Driver made to a gray, for the audit log.
type Change struct {
	Ref    configsvc.Ref
	GrayID string
	// Action is ActionBake, ActionStep, ActionAbort or ActionPromote.
	Action string
	// Step (0-based) and Percent are where the rollout is after it.
	Step    int
	Percent float64
	// Revision is the main revision a promote created.
	Revision int64
	// Reason is the rollout's recorded reason.
	Reason string
	// Failed is the failed gate of an abort.
	Failed *configsvc.GateFailure
}

// Config carries a Driver's dependencies. Store is required; every other
// zero value is a documented default.
type Config struct {
	// Store holds the grays. Required.
	Store Store
	// Leader elects the one Driver of a cluster. Default: none, this
	// Driver always drives (one process on a bbolt file).
	Leader configsvc.Leader
	// Election is the election name. Default: DefaultElection.
	Election string
	// Now is the clock of the rollouts' times (steps, bakes, apply
	// timeouts). Default: time.Now.
	Now func() time.Time
	// Interval is how often Run checks the rollouts. Default:
	// DefaultInterval.
	Interval time.Duration
	// ScanInterval is how often a check also looks for new rollouts.
	// Default: DefaultScanInterval.
	ScanInterval time.Duration
	// ProxyStateFresh bounds the age of the proxy states the traffic gate
	// reads. Default: DefaultProxyStateFresh.
	ProxyStateFresh time.Duration
	// Author is the author of promote revisions. Default: DefaultAuthor.
	Author string
	// Logger receives the Driver's decisions and troubles. Default: a
	// logger that discards.
	Logger *slog.Logger
	// Audit, when set, is called after every change the Driver made.
	Audit func(context.Context, Change)
}

// Driver drives the progressive rollouts of one store's grays. It is safe
// for concurrent use; Run drives until its ctx ends.
type Driver struct {
	cfg     Config
	kick    chan struct{}
	scan    atomic.Bool // a scan is due at the next check
	leading atomic.Bool

	mu       sync.Mutex // serializes checks; guards the fields below
	tracked  map[key]*tracked
	lastScan time.Time
}

// key names a gray.
type key struct {
	ref configsvc.Ref
	id  string
}

// tracked is what a Driver keeps between checks about one gray: the gray
// as last read (without content) and the traffic counters when the
// current bake began.
type tracked struct {
	key
	gray     configsvc.Gray
	baseline *baseline
}

// New returns a Driver for cfg. It fails when Store is nil.
func New(cfg Config) (*Driver, error) {
	if cfg.Store == nil {
		return nil, errors.New("rollout: Config.Store is required")
	}
	if cfg.Election == "" {
		cfg.Election = DefaultElection
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.ScanInterval <= 0 {
		cfg.ScanInterval = DefaultScanInterval
	}
	if cfg.ProxyStateFresh <= 0 {
		cfg.ProxyStateFresh = DefaultProxyStateFresh
	}
	if cfg.Author == "" {
		cfg.Author = DefaultAuthor
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Driver{cfg: cfg, kick: make(chan struct{}, 1), tracked: map[key]*tracked{}}
	d.scan.Store(true)
	return d, nil
}

// Kick makes the next check look for new rollouts at once (one was just
// started through this process), and makes Run check now. It never
// blocks.
func (d *Driver) Kick() {
	d.scan.Store(true)
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Leading reports whether Run leads the election now.
func (d *Driver) Leading() bool { return d.leading.Load() }

// Run campaigns for the election (Config.Leader) and, while it leads,
// checks the rollouts every Interval (and at each Kick), until ctx ends;
// it then returns nil. When the leadership is lost it forgets what it
// kept between checks and campaigns again; a new leader continues every
// rollout from the state recorded in its gray. Campaign failures are
// logged and retried.
func (d *Driver) Run(ctx context.Context) error {
	backoff := d.cfg.Interval
	for ctx.Err() == nil {
		lost, err := d.campaign(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			d.cfg.Logger.Warn("rollout: campaign failed; retrying", "election", d.cfg.Election, "err", err, "in", backoff)
			if !sleep(ctx, backoff) {
				break
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = d.cfg.Interval
		d.lead(ctx, lost)
	}
	return nil
}

// campaign returns once this Driver leads; without a Leader at once, with
// a channel that is never closed.
func (d *Driver) campaign(ctx context.Context) (<-chan struct{}, error) {
	if d.cfg.Leader == nil {
		return nil, nil
	}
	return d.cfg.Leader.Campaign(ctx, d.cfg.Election)
}

// lead checks the rollouts until ctx ends or lost is closed. A lost
// leadership also cancels the check under way, so that this Driver stops
// writing at once.
func (d *Driver) lead(ctx context.Context, lost <-chan struct{}) {
	d.cfg.Logger.Info("rollout: driving the rollouts", "election", d.cfg.Election)
	d.mu.Lock()
	d.tracked = map[key]*tracked{}
	d.mu.Unlock()
	d.scan.Store(true)
	d.leading.Store(true)
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-lost:
			d.leading.Store(false)
			cancel()
		case <-lctx.Done():
		}
	}()
	defer func() {
		cancel()
		wg.Wait()
		d.leading.Store(false)
	}()
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		if err := d.Tick(lctx); err != nil && lctx.Err() == nil {
			d.cfg.Logger.Warn("rollout: check", "err", err)
		}
		select {
		case <-lctx.Done():
			if ctx.Err() == nil {
				d.cfg.Logger.Warn("rollout: leadership lost; stopped driving", "election", d.cfg.Election)
			}
			return
		case <-t.C:
		case <-d.kick:
		}
	}
}

// sleep waits d or until ctx ends; it reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Tick checks every rollout once, at Config.Now: first, when a scan is
// due (the first check, every ScanInterval, after a Kick), it looks for
// active rollouts in every service and group; then it moves each one on
// (see docs/gray.md): to its bake once the cohort applied the step, to
// the next step or a promote once the bake passed clean, or to an abort
// when a gate failed. Run calls it every Interval while it leads; tests
// call it directly with a fake clock. It must not be called while
// another Driver on the same store drives (Run campaigns for that). It
// returns the errors of the rollouts it could not check (each is tried
// again at the next check).
func (d *Driver) Tick(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cfg.Now()
	var errs []error
	if d.scan.Swap(false) || now.Sub(d.lastScan) >= d.cfg.ScanInterval || now.Before(d.lastScan) {
		if err := d.scanAll(ctx); err != nil {
			errs = append(errs, err)
			d.scan.Store(true)
		} else {
			d.lastScan = now
		}
	}
	for k, t := range d.tracked {
		done, err := d.drive(ctx, t, now)
		if err != nil {
			errs = append(errs, fmt.Errorf("gray %s of %s: %w", k.id, k.ref, err))
		}
		if done {
			delete(d.tracked, k)
		}
	}
	return errors.Join(errs...)
}

// scanAll tracks every gray with a rollout to drive.
func (d *Driver) scanAll(ctx context.Context) error {
	for _, kind := range []configsvc.Kind{configsvc.KindService, configsvc.KindGroup} {
		names, err := d.cfg.Store.List(ctx, kind)
		if err != nil {
			return fmt.Errorf("rollout: scan: %w", err)
		}
		for _, name := range names {
			ref := configsvc.Ref{Kind: kind, Name: name}
			h, err := d.cfg.Store.Head(ctx, ref)
			if errors.Is(err, configsvc.ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("rollout: scan %s: %w", ref, err)
			}
			if len(h.Grays) == 0 {
				continue
			}
			grays, err := d.cfg.Store.Grays(ctx, ref)
			if err != nil {
				return fmt.Errorf("rollout: scan %s: %w", ref, err)
			}
			for _, g := range grays {
				if g.State != configsvc.GrayActive || g.Rollout == nil || g.Rollout.State.State == configsvc.RolloutPromoted {
					continue
				}
				k := key{ref, g.ID}
				if _, ok := d.tracked[k]; !ok {
					g.Ref = ref
					d.tracked[k] = &tracked{key: k, gray: g}
					d.cfg.Logger.Info("rollout: driving", "gray", g.ID, "ref", ref.String(), "step", g.Rollout.State.Step+1,
						"percent", g.Rollout.State.Percent, "state", string(g.Rollout.State.State))
				}
			}
		}
	}
	return nil
}

// current returns t's gray as it is now: the one read last when the
// head's summary still has its version, else read again. ok is false when
// the gray ended or its ref is gone.
func (d *Driver) current(ctx context.Context, t *tracked) (configsvc.Gray, bool, error) {
	h, err := d.cfg.Store.Head(ctx, t.ref)
	if errors.Is(err, configsvc.ErrNotFound) {
		return configsvc.Gray{}, false, nil
	}
	if err != nil {
		return configsvc.Gray{}, false, err
	}
	var sum *configsvc.GraySummary
	for i := range h.Grays {
		if h.Grays[i].ID == t.id {
			sum = &h.Grays[i]
		}
	}
	if sum == nil {
		return configsvc.Gray{}, false, nil // ended: its summary left the head
	}
	if sum.Version == t.gray.Version {
		return t.gray, true, nil
	}
	grays, err := d.cfg.Store.Grays(ctx, t.ref)
	if err != nil {
		return configsvc.Gray{}, false, err
	}
	for _, g := range grays {
		if g.ID == t.id {
			g.Ref = t.ref
			t.gray = g
			return g, g.State == configsvc.GrayActive, nil
		}
	}
	return configsvc.Gray{}, false, nil
}

// drive moves t's rollout on by one decision. done reports that the
// Driver has nothing more to do for it.
func (d *Driver) drive(ctx context.Context, t *tracked, now time.Time) (done bool, err error) {
	g, ok, err := d.current(ctx, t)
	if err != nil || !ok {
		return !ok && err == nil, err
	}
	r := g.Rollout
	if r == nil {
		return true, nil
	}
	switch r.State.State {
	case configsvc.RolloutAborted:
		// An abort recorded, its abandon not done (the driver stopped in
		// between): finish it.
		return true, d.abandon(ctx, t, &g, r.State.Reason, r.State.Failed)
	case configsvc.RolloutApplying:
		return d.applying(ctx, t, &g, now)
	case configsvc.RolloutBaking:
		return d.baking(ctx, t, &g, now)
	}
	return true, nil // promoted: EndGray ended the gray with it
}

// cohort returns g's cohort over the live instances, split into the
// members that rejected it and those that have not applied it yet.
func (d *Driver) cohort(ctx context.Context, g *configsvc.Gray) (all, rejected, pending []configsvc.CohortMember, err error) {
	insts, err := configsvc.LiveInstances(ctx, d.cfg.Store, g.Ref)
	if err != nil {
		return nil, nil, nil, err
	}
	all = g.Cohort(insts)
	for _, m := range all {
		switch m.Status {
		case configsvc.GrayRejected:
			rejected = append(rejected, m)
		case configsvc.GrayApplied:
		default:
			pending = append(pending, m)
		}
	}
	return all, rejected, pending, nil
}

// acksGate returns the failure of the acks gate: more cohort instances
// rejected the gray than the rollout allows.
func acksGate(g *configsvc.Gray, rejected []configsvc.CohortMember) (*configsvc.GateFailure, string) {
	r := g.Rollout
	if len(rejected) <= r.MaxRejected {
		return nil, ""
	}
	f := &configsvc.GateFailure{Gate: configsvc.GateAcks, Instances: ids(g.Ref, rejected),
		Figures: map[string]float64{"rejected": float64(len(rejected)), "max_rejected": float64(r.MaxRejected)}}
	why := fmt.Sprintf("acks gate failed at step %d (%v %%): %d cohort instances rejected the gray (max %d): %s",
		r.State.Step+1, r.State.Percent, len(rejected), r.MaxRejected, rejected[0].ID+": "+rejected[0].Reason)
	return f, why
}

// ids returns the names of ms in a GateFailure (memberName).
func ids(ref configsvc.Ref, ms []configsvc.CohortMember) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = memberName(ref, m.Service, m.ID)
	}
	return out
}

// memberName names a cohort member of a gray of ref: its instance id, or
// for a group's gray "service/id" (instance ids are unique per service).
func memberName(ref configsvc.Ref, svc, id string) string {
	if ref.Kind == configsvc.KindService {
		return id
	}
	return svc + "/" + id
}

// applying waits for the cohort to apply the step: to the bake once every
// member applied it; an abort when the acks gate fails or ApplyTimeout
// passed first.
func (d *Driver) applying(ctx context.Context, t *tracked, g *configsvc.Gray, now time.Time) (bool, error) {
	r := g.Rollout
	all, rejected, pending, err := d.cohort(ctx, g)
	if err != nil {
		return false, err
	}
	if f, why := acksGate(g, rejected); f != nil {
		return true, d.abort(ctx, t, g, now, why, f)
	}
	if len(pending) == 0 {
		b, err := d.snapshot(ctx, g, now)
		if err != nil {
			return false, err
		}
		reason := fmt.Sprintf("step %d (%v %%): all %d cohort instances applied the gray; baking for %s",
			r.State.Step+1, r.State.Percent, len(all), time.Duration(r.Steps[r.State.Step].Bake))
		if len(all) == 0 {
			reason = fmt.Sprintf("step %d (%v %%): no live instance in the cohort; baking for %s",
				r.State.Step+1, r.State.Percent, time.Duration(r.Steps[r.State.Step].Bake))
		}
		if err := d.update(ctx, t, g, ActionBake, func(st *configsvc.RolloutState) {
			st.State, st.Since, st.Reason, st.Failed = configsvc.RolloutBaking, now.UTC(), reason, nil
		}); err != nil {
			return false, err
		}
		t.baseline = b
		return false, nil
	}
	if now.Sub(r.State.Since) >= time.Duration(r.ApplyTimeout) {
		f := &configsvc.GateFailure{Gate: configsvc.GateApplyTimeout, Instances: ids(g.Ref, pending), Figures: map[string]float64{
			"pending": float64(len(pending)), "cohort": float64(len(all)), "apply_timeout_seconds": time.Duration(r.ApplyTimeout).Seconds()}}
		why := fmt.Sprintf("apply timeout at step %d (%v %%): %d of %d cohort instances did not apply the gray within %s",
			r.State.Step+1, r.State.Percent, len(pending), len(all), time.Duration(r.ApplyTimeout))
		return true, d.abort(ctx, t, g, now, why, f)
	}
	return false, nil
}

// baking checks the gates during a bake: an abort when one fails; once
// the step's bake time passed, the next step, or a promote after the last.
func (d *Driver) baking(ctx context.Context, t *tracked, g *configsvc.Gray, now time.Time) (bool, error) {
	r := g.Rollout
	all, rejected, _, err := d.cohort(ctx, g)
	if err != nil {
		return false, err
	}
	if f, why := acksGate(g, rejected); f != nil {
		return true, d.abort(ctx, t, g, now, why, f)
	}
	if t.baseline == nil || t.baseline.step != r.State.Step {
		// A bake this Driver did not start (it took over, or restarted):
		// the traffic is compared from now on.
		if t.baseline, err = d.snapshot(ctx, g, now); err != nil {
			return false, err
		}
		d.cfg.Logger.Info("rollout: resuming a bake; traffic counted from now", "gray", g.ID, "step", r.State.Step+1)
	}
	tr, err := d.traffic(ctx, g, all, t.baseline, now)
	if err != nil {
		return false, err
	}
	if f, why := trafficGate(g, tr); f != nil {
		return true, d.abort(ctx, t, g, now, why, f)
	}
	bake := time.Duration(r.Steps[r.State.Step].Bake)
	if now.Sub(r.State.Since) < bake {
		return false, nil
	}
	clean := fmt.Sprintf("step %d (%v %%) baked clean for %s: %s", r.State.Step+1, r.State.Percent, bake, tr.summary())
	if r.State.Step == len(r.Steps)-1 {
		return true, d.promote(ctx, t, g, clean)
	}
	next := r.State.Step + 1
	pct := r.Steps[next].Percent
	err = d.update(ctx, t, g, ActionStep, func(st *configsvc.RolloutState) {
		*st = configsvc.RolloutState{Step: next, Percent: pct, State: configsvc.RolloutApplying, Since: now.UTC(), Reason: clean}
	})
	if err == nil {
		t.baseline = nil
	}
	return false, err
}

// update changes g's rollout state with fn (and its selector percent to
// the state's), compare-and-set on the version read, and audits it.
func (d *Driver) update(ctx context.Context, t *tracked, g *configsvc.Gray, action string, fn func(*configsvc.RolloutState)) error {
	out, err := d.cfg.Store.UpdateGray(ctx, t.ref, t.id, g.Version, func(x *configsvc.Gray) error {
		if x.Rollout == nil {
			return fmt.Errorf("the gray's rollout is gone: %w", configsvc.ErrConflict)
		}
		fn(&x.Rollout.State)
		x.Selector.Percent = x.Rollout.State.Percent
		return nil
	})
	if err != nil {
		return err
	}
	out.Ref = t.ref
	t.gray = out
	st := out.Rollout.State
	d.cfg.Logger.Info("rollout: "+action, "gray", t.id, "ref", t.ref.String(), "step", st.Step+1, "percent", st.Percent, "reason", st.Reason)
	d.audit(ctx, Change{Ref: t.ref, GrayID: t.id, Action: action, Step: st.Step, Percent: st.Percent, Reason: st.Reason, Failed: st.Failed})
	return nil
}

// abort records the failed gate in g's rollout, then abandons g.
func (d *Driver) abort(ctx context.Context, t *tracked, g *configsvc.Gray, now time.Time, why string, f *configsvc.GateFailure) error {
	out, err := d.cfg.Store.UpdateGray(ctx, t.ref, t.id, g.Version, func(x *configsvc.Gray) error {
		if x.Rollout == nil {
			return fmt.Errorf("the gray's rollout is gone: %w", configsvc.ErrConflict)
		}
		x.Rollout.State.State, x.Rollout.State.Reason, x.Rollout.State.Since, x.Rollout.State.Failed = configsvc.RolloutAborted, why, now.UTC(), f
		return nil
	})
	if err != nil {
		return err
	}
	out.Ref = t.ref
	t.gray = out
	return d.abandon(ctx, t, &out, why, f)
}

// abandon ends g abandoned after its rollout aborted.
func (d *Driver) abandon(ctx context.Context, t *tracked, g *configsvc.Gray, why string, f *configsvc.GateFailure) error {
	ended, _, err := d.cfg.Store.EndGray(ctx, t.ref, t.id, g.Version, configsvc.GrayEnd{State: configsvc.GrayAbandoned, Reason: why})
	if err != nil {
		return err
	}
	st := ended.Rollout.State
	d.cfg.Logger.Warn("rollout: aborted; gray abandoned", "gray", t.id, "ref", t.ref.String(), "reason", why)
	d.audit(ctx, Change{Ref: t.ref, GrayID: t.id, Action: ActionAbort, Step: st.Step, Percent: st.Percent, Reason: why, Failed: f})
	return nil
}

// promote ends g promoted: main gets main + the gray's changes.
func (d *Driver) promote(ctx context.Context, t *tracked, g *configsvc.Gray, clean string) error {
	r := g.Rollout
	reason := fmt.Sprintf("rollout: all %d steps baked clean; last: %s", len(r.Steps), clean)
	msg := "promote gray " + g.ID
	if g.Name != "" {
		msg += ": " + g.Name
	}
	msg += fmt.Sprintf(" (rollout: %d steps baked clean)", len(r.Steps))
	ended, rev, err := d.cfg.Store.EndGray(ctx, t.ref, t.id, g.Version, configsvc.GrayEnd{State: configsvc.GrayPromoted, Reason: reason,
		Promote: &configsvc.Changeset{Author: d.cfg.Author, Message: msg}})
	if err != nil {
		return err
	}
	st := ended.Rollout.State
	d.cfg.Logger.Info("rollout: promoted", "gray", t.id, "ref", t.ref.String(), "revision", rev.Number)
	d.audit(ctx, Change{Ref: t.ref, GrayID: t.id, Action: ActionPromote, Step: st.Step, Percent: st.Percent, Revision: rev.Number, Reason: reason})
	return nil
}

func (d *Driver) audit(ctx context.Context, c Change) {
	if d.cfg.Audit != nil {
		d.cfg.Audit(ctx, c)
	}
}

package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/fanout"
	"github.com/sluicehq/sluice/configsvc/testkit"
)

// wait bounds every wait for an event in these tests.
const wait = 10 * time.Second

// counting is a store that counts the calls the decorator makes to it and
// how many of its watches are open.
type counting struct {
	configsvc.Store
	watches, instWatches, revisions atomic.Int64
	open, instOpen                  atomic.Int64
}

func (c *counting) Watch(ctx context.Context, ref configsvc.Ref, from int64, opts ...configsvc.WatchOption) <-chan configsvc.Event {
	c.watches.Add(1)
	return relay(ctx, c.Store.Watch(ctx, ref, from, opts...), &c.open)
}

func (c *counting) WatchInstances(ctx context.Context, svc string) <-chan configsvc.InstancesEvent {
	c.instWatches.Add(1)
	return relay(ctx, c.Store.WatchInstances(ctx, svc), &c.instOpen)
}

// relay passes in on, counting itself in open while it runs.
func relay[E any](ctx context.Context, in <-chan E, open *atomic.Int64) <-chan E {
	open.Add(1)
	out := make(chan E)
	go func() {
		defer open.Add(-1)
		defer close(out)
		for ev := range in {
			select {
			case out <- ev:
			case <-ctx.Done():
			}
		}
	}()
	return out
}

func (c *counting) Revision(ctx context.Context, ref configsvc.Ref, n int64) (configsvc.Revision, error) {
	c.revisions.Add(1)
	return c.Store.Revision(ctx, ref, n)
}

// mustShared returns a decorator with opts on a counted bbolt store that
// holds service "orders", both closed at cleanup.
func mustShared(t *testing.T, opts fanout.Options) (*fanout.Store, *counting) {
	t.Helper()
	c := &counting{Store: bolttest.MustOpen(t, boltstore.Options{})}
	st := fanout.New(c, opts)
	t.Cleanup(func() { st.Close() })
	if err := st.Create(t.Context(), orders); err != nil {
		t.Fatal(err)
	}
	return st, c
}

var orders = configsvc.Service("orders")

// mustPublish publishes n revisions of orders on top of its head.
func mustPublish(t *testing.T, st configsvc.Store, n int) {
	t.Helper()
	for range n {
		h, err := st.Head(t.Context(), orders)
		if err != nil {
			t.Fatal(err)
		}
		cs := configsvc.Changeset{Base: h.Revision, Author: "test", Changes: []configsvc.Change{
			{File: "app.json", Content: fmt.Appendf(nil, `{"rev":%d}`, h.Revision+1)},
		}}
		if _, err := st.Publish(t.Context(), orders, cs); err != nil {
			t.Fatal(err)
		}
	}
}

// next returns the next event of ch, failing the test after wait.
func next(t *testing.T, ch <-chan configsvc.Event) configsvc.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch closed, want an event")
		}
		return ev
	case <-time.After(wait):
		t.Fatalf("no watch event within %v", wait)
	}
	return configsvc.Event{}
}

// wantRevisions reads events of ch (skipping grays and links events) until
// it has revisions first..last, in order.
func wantRevisions(t *testing.T, ch <-chan configsvc.Event, first, last int64) {
	t.Helper()
	for want := first; want <= last; {
		ev := next(t, ch)
		switch {
		case ev.Err != nil:
			t.Fatalf("watch error %v, want revision %d", ev.Err, want)
		case ev.Revision == nil:
			continue
		case ev.Revision.Number != want:
			t.Fatalf("revision %d, want %d", ev.Revision.Number, want)
		}
		want++
	}
}

// wantBaseline reads the next event of ch and fails unless it is a grays
// baseline.
func wantBaseline(t *testing.T, ch <-chan configsvc.Event) {
	t.Helper()
	if ev := next(t, ch); !ev.GraysChanged {
		t.Fatalf("event %+v, want the grays baseline", ev)
	}
}

func TestManyStreamsShareOneUpstreamWatch(t *testing.T) {
	st, c := mustShared(t, fanout.Options{Linger: -1})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const streams = 200
	chans := make([]<-chan configsvc.Event, streams)
	for i := range chans {
		chans[i] = st.Watch(ctx, orders, 0)
		wantBaseline(t, chans[i])
	}
	mustPublish(t, st, 3)
	for _, ch := range chans {
		wantRevisions(t, ch, 1, 3)
	}
	if got := c.watches.Load(); got != 1 {
		t.Fatalf("%d upstream watches for %d streams of one service, want 1", got, streams)
	}
	if got := c.revisions.Load(); got != 0 {
		t.Fatalf("%d Revision reads, want 0: every revision came from the shared watch", got)
	}
}

func TestResumeInsideRingServedFromMemory(t *testing.T) {
	st, c := mustShared(t, fanout.Options{Linger: -1})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	first := st.Watch(ctx, orders, 0) // keeps the hub running
	wantBaseline(t, first)
	mustPublish(t, st, 10)
	wantRevisions(t, first, 1, 10)
	h, err := st.Head(ctx, orders)
	if err != nil {
		t.Fatal(err)
	}
	r4, err := c.Store.Revision(ctx, orders, 4) // not counted: the test's own read
	if err != nil {
		t.Fatal(err)
	}
	resumed := st.Watch(ctx, orders, 4, configsvc.Expect(r4.Identity()))
	wantRevisions(t, resumed, 5, h.Revision)
	wantBaseline(t, resumed)
	if got := c.revisions.Load(); got != 0 {
		t.Fatalf("%d Revision reads for a resume inside the ring, want 0", got)
	}
	if got := c.watches.Load(); got != 1 {
		t.Fatalf("%d upstream watches, want 1", got)
	}
	mustPublish(t, st, 1)
	wantRevisions(t, resumed, 11, 11)
	wantRevisions(t, first, 11, 11)
}

func TestResumeBelowRingReadsTheStore(t *testing.T) {
	st, c := mustShared(t, fanout.Options{Ring: 4, Linger: -1})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	mustPublish(t, st, 3) // before the hub: below its ring
	first := st.Watch(ctx, orders, 3)
	wantBaseline(t, first)
	for n := int64(4); n <= 9; n++ { // the ring keeps the newest 4 events
		mustPublish(t, st, 1)
		wantRevisions(t, first, n, n) // first keeps up
	}
	resumed := st.Watch(ctx, orders, 1)
	wantRevisions(t, resumed, 2, 9)
	wantBaseline(t, resumed)
	if got := c.revisions.Load(); got == 0 {
		t.Fatal("no Revision read for revisions older than the ring")
	}
	if got := c.watches.Load(); got != 1 {
		t.Fatalf("%d upstream watches, want 1", got)
	}
}

func TestResumeWithAnotherPublishIDIsRewritten(t *testing.T) {
	st, _ := mustShared(t, fanout.Options{Linger: -1})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	first := st.Watch(ctx, orders, 0)
	wantBaseline(t, first)
	mustPublish(t, st, 3)
	wantRevisions(t, first, 1, 3)
	h, err := st.Head(ctx, orders)
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []int64{2, 3} {
		ch := st.Watch(ctx, orders, from, configsvc.Expect(configsvc.Identity{Generation: h.Generation, PublishID: "0000000000000000"}))
		ev := next(t, ch)
		for ev.Err == nil && (ev.Revision != nil || ev.GraysChanged) && from == 3 {
			ev = next(t, ch)
		}
		if !errors.Is(ev.Err, configsvc.ErrRewritten) {
			t.Fatalf("from %d with another publish id: event %+v, want ErrRewritten", from, ev)
		}
	}
}

func TestSlowStreamDoesNotDelayOthersAndIsToldToReload(t *testing.T) {
	const ring = 8
	st, _ := mustShared(t, fanout.Options{Ring: ring, Linger: -1})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	slow := st.Watch(ctx, orders, 0)
	wantBaseline(t, slow)
	fast := st.Watch(ctx, orders, 0)
	wantBaseline(t, fast)
	const burst = 3 * ring
	start := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		mustPublish(t, st, burst)
	}()
	wantRevisions(t, fast, 1, burst) // while slow reads nothing
	<-done
	if took := time.Since(start); took > wait/2 {
		t.Fatalf("the fast stream took %v for %d revisions", took, burst)
	}
	var got []int64
	for {
		ev := next(t, slow)
		if ev.Revision != nil {
			got = append(got, ev.Revision.Number)
			continue
		}
		if !errors.Is(ev.Err, configsvc.ErrCompacted) {
			t.Fatalf("slow stream: event %+v after revisions %v, want one wrapping ErrCompacted (reload)", ev, got)
		}
		break
	}
	for i, n := range got {
		if n != int64(i+1) {
			t.Fatalf("slow stream got revisions %v before the reload, want 1, 2, 3 … without gaps", got)
		}
	}
	select {
	case ev, ok := <-slow:
		if ok {
			t.Fatalf("slow stream: event %+v after the reload error, want the channel closed", ev)
		}
	case <-time.After(wait):
		t.Fatal("slow stream not closed after the reload error")
	}
}

func TestLastUnsubscribeStopsTheUpstreamWatch(t *testing.T) {
	t.Run("AtOnce", func(t *testing.T) {
		st, c := mustShared(t, fanout.Options{Linger: -1})
		ctx, cancel := context.WithCancel(t.Context())
		var chans []<-chan configsvc.Event
		for range 5 {
			ch := st.Watch(ctx, orders, 0)
			wantBaseline(t, ch)
			chans = append(chans, ch)
		}
		if got := c.open.Load(); got != 1 {
			t.Fatalf("%d upstream watches open, want 1", got)
		}
		cancel()
		for _, ch := range chans {
			for range ch {
			}
		}
		testkit.EventuallyTrue(t, wait, "the upstream watch stopped", func() bool { return c.open.Load() == 0 })
		if w, _ := st.Hubs(); w != 0 {
			t.Fatalf("%d hubs after the last subscriber left, want 0", w)
		}
	})
	t.Run("AfterLinger", func(t *testing.T) {
		const linger = 300 * time.Millisecond
		st, c := mustShared(t, fanout.Options{Linger: linger})
		ctx, cancel := context.WithCancel(t.Context())
		ch := st.Watch(ctx, orders, 0)
		wantBaseline(t, ch)
		cancel()
		for range ch {
		}
		// Back within the linger: the same upstream watch.
		ctx2, cancel2 := context.WithCancel(t.Context())
		ch = st.Watch(ctx2, orders, 0)
		wantBaseline(t, ch)
		if got := c.watches.Load(); got != 1 {
			t.Fatalf("%d upstream watches after a reconnect within the linger, want 1", got)
		}
		cancel2()
		for range ch {
		}
		testkit.EventuallyTrue(t, wait, "the upstream watch stopped after the linger", func() bool { return c.open.Load() == 0 })
	})
}

func TestInstanceStreamsShareOneUpstreamWatch(t *testing.T) {
	st, c := mustShared(t, fanout.Options{Linger: -1})
	ctx, cancel := context.WithCancel(t.Context())
	const streams = 50
	chans := make([]<-chan configsvc.InstancesEvent, streams)
	for i := range chans {
		chans[i] = st.WatchInstances(ctx, orders.Name)
	}
	lease, err := st.Register(ctx, configsvc.Instance{Service: orders.Name, ID: "i-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Close()
	var wg sync.WaitGroup
	for _, ch := range chans {
		wg.Go(func() {
			timeout := time.After(wait)
			for {
				select {
				case ev := <-ch:
					if len(ev.Instances) == 1 && ev.Instances[0].ID == "i-1" {
						return
					}
				case <-timeout:
					t.Error("no instance list with i-1")
					return
				}
			}
		})
	}
	wg.Wait()
	if got := c.instWatches.Load(); got != 1 {
		t.Fatalf("%d upstream instance watches for %d streams, want 1", got, streams)
	}
	cancel()
	for _, ch := range chans {
		for range ch {
		}
	}
	testkit.EventuallyTrue(t, wait, "the upstream instance watch stopped", func() bool { return c.instOpen.Load() == 0 })
}

func TestSubscriptionPollsTheSharedWatch(t *testing.T) {
	st, c := mustShared(t, fanout.Options{Linger: -1})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch := st.Watch(ctx, orders, 0) // another subscriber on the same hub
	wantBaseline(t, ch)
	sub := st.Subscribe(ctx, orders, 0, nil)
	defer sub.Close()
	// poll waits for and returns the next event.
	poll := func() configsvc.Event {
		t.Helper()
		timeout := time.After(wait)
		for {
			ev, ok, wake, retryAt, done := sub.Next()
			switch {
			case ok:
				return ev
			case done:
				t.Fatal("subscription ended, want an event")
			}
			var retry <-chan time.Time
			if !retryAt.IsZero() {
				retry = time.After(time.Until(retryAt))
			}
			select {
			case <-wake:
			case <-retry:
			case <-timeout:
				t.Fatalf("no event within %v", wait)
			}
		}
	}
	if ev := poll(); !ev.GraysChanged {
		t.Fatalf("first event %+v, want the grays baseline", ev)
	}
	mustPublish(t, st, 2)
	for want := int64(1); want <= 2; want++ {
		if ev := poll(); ev.Revision == nil || ev.Revision.Number != want {
			t.Fatalf("event %+v, want revision %d", ev, want)
		}
	}
	if got := c.watches.Load(); got != 1 {
		t.Fatalf("%d upstream watches for a Watch and a Subscription, want 1", got)
	}
	sub.Close()
	sub.Close() // a second Close is harmless
	cancel()
	for range ch {
	}
	testkit.EventuallyTrue(t, wait, "the upstream watch stopped", func() bool { return c.open.Load() == 0 })
}

// TestNotifyTellsAWaiterWithoutAGoroutine checks Notify on both kinds of
// subscription, as a stream that waits by reading its connection uses it:
// called once the shared watch moved (from the goroutine that moved it),
// at once when it moved already, not for a wake of the past after a later
// Notify replaced it, and never after Close.
func TestNotifyTellsAWaiterWithoutAGoroutine(t *testing.T) {
	st, _ := mustShared(t, fanout.Options{Linger: -1})
	ctx := t.Context()
	// next drains sub and returns the wake to wait for.
	next := func(sub *fanout.Subscription) <-chan struct{} {
		t.Helper()
		for {
			_, ok, wake, _, done := sub.Next()
			switch {
			case done:
				t.Fatal("subscription ended")
			case !ok:
				return wake
			}
		}
	}
	// waitNotified fails unless notified is told within wait.
	waitNotified := func(notified <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-notified:
		case <-time.After(wait):
			t.Fatalf("not notified: %s", what)
		}
	}
	sub := st.Subscribe(ctx, orders, 0, nil)
	defer sub.Close()
	for baseline := false; !baseline; { // until the baseline is out
		ev, ok, wake, _, done := sub.Next()
		switch {
		case done:
			t.Fatal("subscription ended")
		case ok:
			baseline = ev.GraysChanged
		default:
			select {
			case <-wake:
			case <-time.After(wait):
				t.Fatal("no baseline")
			}
		}
	}
	wake := next(sub)
	notified := make(chan struct{}, 4)
	sub.Notify(wake, func() { notified <- struct{}{} })
	select {
	case <-notified:
		t.Fatal("notified before anything changed")
	case <-time.After(100 * time.Millisecond):
	}
	mustPublish(t, st, 1)
	waitNotified(notified, "after a publish")
	// The wake of the past: at once, on the caller's goroutine.
	called := false
	sub.Notify(wake, func() { called = true })
	if !called {
		t.Fatal("Notify with a wake that closed already did not call at once")
	}
	// Closed: a change calls nothing.
	wake = next(sub)
	sub.Notify(wake, func() { notified <- struct{}{} })
	sub.Close()
	mustPublish(t, st, 1)
	select {
	case <-notified:
		t.Fatal("notified after Close")
	case <-time.After(200 * time.Millisecond):
	}

	isub := st.SubscribeInstances(orders.Name)
	defer isub.Close()
	nextInst := func() (configsvc.InstancesEvent, bool, <-chan struct{}) {
		ev, ok, wake, done := isub.Next()
		if done {
			t.Fatal("instance subscription ended")
		}
		return ev, ok, wake
	}
	var iwake <-chan struct{}
	for { // the first list
		_, ok, w := nextInst()
		if ok {
			break
		}
		isub.Notify(w, func() { notified <- struct{}{} })
		waitNotified(notified, "the first instance list")
	}
	_, _, iwake = nextInst()
	isub.Notify(iwake, func() { notified <- struct{}{} })
	lease, err := st.Register(ctx, configsvc.Instance{Service: orders.Name, ID: "i-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Close()
	waitNotified(notified, "after a registration")
	for {
		ev, ok, w := nextInst()
		if ok && len(ev.Instances) == 1 && ev.Instances[0].ID == "i-1" {
			break
		}
		if !ok {
			isub.Notify(w, func() { notified <- struct{}{} })
			waitNotified(notified, "the list with i-1")
		}
	}
}

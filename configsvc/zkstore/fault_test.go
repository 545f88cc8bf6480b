package zkstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// publisher publishes to one service in a loop and remembers every
// publish that was acknowledged, with its content.
type publisher struct {
	st  configsvc.Store
	ref configsvc.Ref

	mu       sync.Mutex
	acked    map[int64]string // revision → content of a.txt
	failures int              // publishes that returned an error
	unavail  int              // of which ErrUnavailable
}

func newPublisher(st configsvc.Store, ref configsvc.Ref) *publisher {
	return &publisher{st: st, ref: ref, acked: map[int64]string{}}
}

func (p *publisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// run publishes until want acknowledged publishes, maxAttempts, or ctx
// ends. progress receives the acknowledged count after each success
// (non-blocking).
func (p *publisher) run(ctx context.Context, want, maxAttempts int, progress chan<- int) {
	base := int64(-1)
	for i := 0; i < maxAttempts && ctx.Err() == nil && p.count() < want; i++ {
		if base < 0 {
			h, err := p.st.Head(ctx, p.ref)
			if err != nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			base = h.Revision
		}
		content := fmt.Sprintf("attempt %d on base %d", i, base)
		rev, err := p.st.Publish(ctx, p.ref, configsvc.Changeset{Base: base, Author: "fault", Message: content,
			Changes: []configsvc.Change{{File: "a.txt", Content: []byte(content)}}})
		p.mu.Lock()
		if err == nil {
			p.acked[rev.Number] = content
			n := len(p.acked)
			p.mu.Unlock()
			base = rev.Number
			select {
			case progress <- n:
			default:
			}
			continue
		}
		p.failures++
		if errors.Is(err, configsvc.ErrUnavailable) {
			p.unavail++
		}
		p.mu.Unlock()
		base = -1 // re-read the head: the outcome may be unknown
		time.Sleep(10 * time.Millisecond)
	}
}

// verify checks that every acknowledged publish is readable with its content.
func (p *publisher) verify(ctx context.Context, t *testing.T, st configsvc.Store) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for n, content := range p.acked {
		r, err := st.Revision(ctx, p.ref, n)
		if err != nil {
			t.Errorf("acknowledged revision %d: %v", n, err)
			continue
		}
		if len(r.Changes) != 1 || string(r.Changes[0].Content) != content || r.Message != content {
			t.Errorf("acknowledged revision %d holds %+v, want content %q", n, r.Changes, content)
		}
	}
}

// waitProgress waits until the publisher has at least n acknowledged
// publishes.
func waitProgress(t *testing.T, p *publisher, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for p.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("publisher reached %d acknowledged publishes, want %d within %v", p.count(), n, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// collector consumes a watch on its own goroutine, as a live client would,
// checking that revisions arrive in order.
type collector struct {
	mu          sync.Mutex
	last        int64
	unavailable int
	err         error
	changed     chan struct{} // signalled after each event
}

func startCollector(ch <-chan configsvc.Event, from int64) *collector {
	c := &collector{last: from, changed: make(chan struct{}, 1)}
	go func() {
		for ev := range ch {
			c.mu.Lock()
			switch {
			case ev.Err != nil && errors.Is(ev.Err, configsvc.ErrUnavailable):
				c.unavailable++
			case ev.Err != nil:
				c.err = fmt.Errorf("watch error after revision %d: %w", c.last, ev.Err)
			case ev.Revision != nil && c.err == nil:
				if ev.Revision.Number != c.last+1 {
					c.err = fmt.Errorf("watch delivered revision %d after %d (in order, none skipped)", ev.Revision.Number, c.last)
				}
				c.last = ev.Revision.Number
			}
			c.mu.Unlock()
			select {
			case c.changed <- struct{}{}:
			default:
			}
		}
	}()
	return c
}

// wait waits until revision until has been delivered and returns the
// number of ErrUnavailable events seen so far.
func (c *collector) wait(t *testing.T, until int64, within time.Duration) int {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		c.mu.Lock()
		last, unavailable, err := c.last, c.unavailable, c.err
		c.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if last >= until {
			return unavailable
		}
		select {
		case <-c.changed:
		case <-timer.C:
			t.Fatalf("watch reached revision %d, want %d within %v", last, until, within)
		}
	}
}

// TestFaultPublishRecognisesOwnRevision: the connection drops after the
// publish transaction reached ZooKeeper but before its reply came back;
// Publish must find its own revision and report success, not a conflict.
func TestFaultPublishRecognisesOwnRevision(t *testing.T) {
	srv := shared(t)
	px := zktest.StartProxy(t, srv.Addr())
	st := mustOpen(t, []string{px.Addr()}, func(c *zkstore.Config) { c.OpTimeout = 10 * time.Second })
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	px.CutAfterMulti(1)
	rev, err := st.Publish(ctx, ref, configsvc.Changeset{Base: 0, Changes: []configsvc.Change{put("a.txt", "1")}})
	if err != nil {
		t.Fatalf("Publish across a dropped reply: %v", err)
	}
	if px.Cuts() != 1 {
		t.Fatalf("proxy cut %d multi replies, want 1", px.Cuts())
	}
	h, err := st.Head(ctx, ref)
	if err != nil || h.Revision != 1 || rev.Number != 1 {
		t.Fatalf("after publish: revision %d, head %d, %v; want 1 and 1", rev.Number, h.Revision, err)
	}
	if _, err := st.Revision(ctx, ref, 2); !errors.Is(err, configsvc.ErrNotFound) {
		t.Fatalf("Revision(2) = %v: the retry published twice", err)
	}
}

// TestFaultKillRestart: kill -9 the server mid-run and restart it. Every
// acknowledged publish is still readable, calls during the outage return
// ErrUnavailable within their timeout, and the watch resumes in order.
func TestFaultKillRestart(t *testing.T) {
	srv := zktest.Start(t)
	const opTimeout = time.Second
	st := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.OpTimeout = opTimeout; c.SessionTimeout = 10 * time.Second })
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	watch := startCollector(st.Watch(ctx, ref, 0), 0)
	pub := newPublisher(st, ref)
	pctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pub.run(pctx, 1<<30, 1<<30, nil)
	}()
	waitProgress(t, pub, 20, 20*time.Second)

	srv.Kill()
	t.Run("CallsDuringOutage", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			call func(context.Context) error
		}{
			{"Head", func(ctx context.Context) error { _, err := st.Head(ctx, ref); return err }},
			{"Publish", func(ctx context.Context) error {
				_, err := st.Publish(ctx, ref, configsvc.Changeset{Base: 1, Changes: []configsvc.Change{put("b.txt", "x")}})
				return err
			}},
			{"Instances", func(ctx context.Context) error { _, err := st.Instances(ctx, "orders"); return err }},
			{"Ping", st.Ping},
		} {
			t.Run(tc.name, func(t *testing.T) {
				start := time.Now()
				err := tc.call(context.Background())
				elapsed := time.Since(start)
				if !errors.Is(err, configsvc.ErrUnavailable) {
					t.Errorf("%s during outage = %v, want ErrUnavailable", tc.name, err)
				}
				// The slack is for a loaded test machine (-race, shared CPUs).
				if elapsed > opTimeout+time.Second {
					t.Errorf("%s during outage took %v, over OpTimeout %v", tc.name, elapsed, opTimeout)
				}
				t.Logf("%s returned %v after %v", tc.name, err, elapsed.Round(time.Millisecond))
			})
		}
	})
	before := pub.count()
	srv.Restart()
	waitProgress(t, pub, before+20, 30*time.Second)
	stop()
	<-done

	h, err := st.Head(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	pub.verify(ctx, t, st)
	unavailable := watch.wait(t, h.Revision, 30*time.Second)
	t.Logf("acknowledged %d publishes, %d failed (%d unavailable); head %d; watch saw %d unavailable events",
		pub.count(), pub.failures, pub.unavail, h.Revision, unavailable)
	if unavailable == 0 {
		t.Errorf("watch reported no ErrUnavailable event across a server kill")
	}
}

// TestFaultSessionExpiry: the store's network is cut for longer than its
// session timeout, so ZooKeeper expires the session (its instance node
// vanishes) while another store publishes. After the network heals, the
// watcher delivers every revision published meanwhile, in order, and the
// instance is registered again on the new session.
func TestFaultSessionExpiry(t *testing.T) {
	srv := shared(t)
	px := zktest.StartProxy(t, srv.Addr())
	const root = "/expiry-test"
	a := mustOpen(t, []string{px.Addr()}, func(c *zkstore.Config) {
		c.Root = root
		c.SessionTimeout = time.Second
		c.OpTimeout = time.Second
	})
	b := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root })
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	if err := b.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	lease, err := a.Register(ctx, configsvc.Instance{Service: "orders", ID: "a-1", Addr: "127.0.0.1:1", Status: configsvc.StatusApplied})
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Close()
	watch := startCollector(a.Watch(ctx, ref, 0), 0)
	publish(ctx, t, b, ref, 0, put("a.txt", "1"))
	watch.wait(t, 1, 10*time.Second)

	px.Partition()
	waitInstances(t, b, "orders", 0, 15*time.Second) // the server expired a's session
	start := time.Now()
	if _, err := a.Head(context.Background(), ref); !errors.Is(err, configsvc.ErrUnavailable) || time.Since(start) > 2*time.Second {
		t.Errorf("Head while partitioned = %v after %v, want ErrUnavailable within 1s", err, time.Since(start))
	}
	for n := int64(1); n <= 5; n++ {
		publish(ctx, t, b, ref, n, put("a.txt", fmt.Sprint(n+1)))
	}
	px.Heal()
	unavailable := watch.wait(t, 6, 20*time.Second)
	if unavailable == 0 {
		t.Errorf("watch reported no ErrUnavailable event across a session expiry")
	}
	waitInstances(t, b, "orders", 1, 15*time.Second)
	publish(ctx, t, b, ref, 6, put("a.txt", "7"))
	watch.wait(t, 7, 10*time.Second)
}

func waitInstances(t *testing.T, st configsvc.Store, svc string, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		list, err := st.Instances(context.Background(), svc)
		if err == nil && len(list) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Instances(%s) = %d (%v), want %d within %v", svc, len(list), err, n, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFaultEnsembleLeaderKill: kill the leader of a 3-node ensemble while
// 500 publishes run; no acknowledged publish may be lost.
func TestFaultEnsembleLeaderKill(t *testing.T) {
	ens := zktest.StartEnsemble(t, 3)
	const root = "/leader-kill-test"
	st := mustOpen(t, ens.Servers(), func(c *zkstore.Config) {
		c.Root = root
		c.OpTimeout = 3 * time.Second
		c.SessionTimeout = 6 * time.Second
		c.Retention = 2000
	})
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	pub := newPublisher(st, ref)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pub.run(ctx, 500, 3000, nil)
	}()
	waitProgress(t, pub, 100, 30*time.Second)
	leader := ens.Leader()
	ens.Kill(leader)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("500 publishes did not finish within 60s (acknowledged %d)", pub.count())
	}
	if pub.count() != 500 {
		t.Fatalf("acknowledged %d publishes, want 500", pub.count())
	}
	// Read back through a fresh session on the surviving nodes.
	var alive []string
	for i := range ens.Size() {
		if i != leader {
			alive = append(alive, ens.Node(i).Addr())
		}
	}
	check := mustOpen(t, alive, func(c *zkstore.Config) { c.Root = root; c.OpTimeout = 5 * time.Second })
	pub.verify(ctx, t, check)
	t.Logf("killed leader node %d; acknowledged %d, failed %d (%d unavailable)", leader, pub.count(), pub.failures, pub.unavail)
}

// TestFaultAppendRecognisesOwnEntry: an Append whose reply is lost is
// resolved without appending twice.
func TestFaultAppendRecognisesOwnEntry(t *testing.T) {
	srv := shared(t)
	px := zktest.StartProxy(t, srv.Addr())
	st := mustOpen(t, []string{px.Addr()}, func(c *zkstore.Config) { c.OpTimeout = 10 * time.Second })
	ctx := testCtx(t)
	recs := st.Records()
	if n, err := recs.Append(ctx, "audit", []byte("first"), 0); err != nil || n != 1 {
		t.Fatalf("Append = %d, %v; want 1", n, err)
	}
	px.CutAfterMulti(1)
	n, err := recs.Append(ctx, "audit", []byte("second"), 0)
	if err != nil || n != 2 {
		t.Fatalf("Append across a dropped reply = %d, %v; want 2", n, err)
	}
	if px.Cuts() != 1 {
		t.Fatalf("proxy cut %d multi replies, want 1", px.Cuts())
	}
	got, err := recs.Scan(ctx, "audit", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ID != "2" || string(got[0].Data) != "second" || got[1].ID != "1" {
		t.Fatalf("Scan = %+v, want entries 2 (second) and 1", got)
	}
}

// TestFaultAppendDoesNotClaimAnothersEntry: an Append's transaction is
// lost on its way (the connection drops before ZooKeeper sees it) while
// another server appends the very same bytes under the sequence number the
// first one tried. The first Append must not take that entry for its own:
// it appends its entry after it, and the log holds both.
func TestFaultAppendDoesNotClaimAnothersEntry(t *testing.T) {
	srv := shared(t)
	px := zktest.StartProxy(t, srv.Addr())
	const root = "/append-identical"
	a := mustOpen(t, []string{px.Addr()}, func(c *zkstore.Config) { c.Root, c.OpTimeout = root, 10*time.Second })
	b := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root })
	ctx := testCtx(t)
	if n, err := a.Records().Append(ctx, "audit", []byte("first"), 0); err != nil || n != 1 {
		t.Fatalf("Append = %d, %v; want 1", n, err)
	}
	entry := []byte(`{"action":"login","actor":"alice"}`)
	type result struct {
		n   int64
		err error
	}
	others := make(chan result, 1)
	px.DropMulti(func() {
		n, err := b.Records().Append(ctx, "audit", entry, 0)
		others <- result{n, err}
	})
	n, err := a.Records().Append(ctx, "audit", entry, 0)
	var o result
	select {
	case o = <-others:
	default:
		t.Fatal("the proxy dropped no transaction")
	}
	if other, otherErr := o.n, o.err; otherErr != nil || other != 2 {
		t.Fatalf("the other server's Append = %d, %v; want 2", other, otherErr)
	}
	if px.Cuts() != 1 {
		t.Fatalf("proxy dropped %d transactions, want 1", px.Cuts())
	}
	if err != nil || n != 3 {
		t.Fatalf("Append whose transaction was lost = %d, %v; want 3 (its own entry, after the other server's)", n, err)
	}
	got, err := b.Records().Scan(ctx, "audit", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].ID != "3" || got[1].ID != "2" || string(got[0].Data) != string(entry) || string(got[1].Data) != string(entry) {
		t.Fatalf("Scan = %+v, want entries 3 and 2 both holding %s, then 1", got, entry)
	}
}

package zkstore_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// campaign is one Campaign running on its own goroutine.
type campaign struct {
	name string
	won  chan (<-chan struct{}) // the lost channel, once it leads
	err  chan error
}

func startCampaign(ctx context.Context, st *zkstore.Store, who, election string) *campaign {
	c := &campaign{name: who, won: make(chan (<-chan struct{}), 1), err: make(chan error, 1)}
	go func() {
		lost, err := st.Campaign(ctx, election)
		if err != nil {
			c.err <- err
			return
		}
		c.won <- lost
	}()
	return c
}

// leader waits until exactly one of cs leads and returns it with its lost
// channel; it fails when none does within d or a campaign fails.
func leader(t *testing.T, d time.Duration, cs ...*campaign) (*campaign, <-chan struct{}) {
	t.Helper()
	timeout := time.After(d)
	for {
		for _, c := range cs {
			select {
			case lost := <-c.won:
				for _, o := range cs {
					if o != c && len(o.won) > 0 {
						t.Fatalf("%s and %s lead at once", c.name, o.name)
					}
				}
				return c, lost
			case err := <-c.err:
				t.Fatalf("campaign of %s: %v", c.name, err)
			default:
			}
		}
		select {
		case <-timeout:
			t.Fatalf("no leader within %v", d)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func mustClosed(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("%s: not closed within %v", what, d)
	}
}

func TestElectionOneLeaderAtATime(t *testing.T) {
	zk := shared(t)
	root := fmt.Sprintf("/sluice-test/election-%d", roots.Add(1))
	onRoot := func(c *zkstore.Config) { c.Root = root }
	stores := []*zkstore.Store{mustOpen(t, zk.Servers(), onRoot), mustOpen(t, zk.Servers(), onRoot), mustOpen(t, zk.Servers(), onRoot)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ctxs := make([]context.CancelFunc, 3)
	var cs []*campaign
	for i, st := range stores {
		cctx, ccancel := context.WithCancel(ctx)
		ctxs[i] = ccancel
		cs = append(cs, startCampaign(cctx, st, fmt.Sprintf("store-%d", i), "rollouts"))
		if i == 0 {
			leader(t, 10*time.Second, cs[0]) // the first to enter leads
		}
	}
	// The documented layout: one ephemeral-sequential node per campaigner.
	raw := rawConn(t, zk.Servers(), "")
	nodeName := regexp.MustCompile(`^_c_[0-9a-f]{32}-n-[0-9]{10}$`)
	testkit.Eventually(t, 10*time.Second, "three election nodes", func() error {
		kids, _, err := raw.Children(root + "/elections/rollouts")
		if err != nil || len(kids) != 3 {
			return fmt.Errorf("children %v, %v", kids, err)
		}
		for _, k := range kids {
			_, st, err := raw.Get(root + "/elections/rollouts/" + k)
			if !nodeName.MatchString(k) || err != nil || st.EphemeralOwner == 0 {
				return fmt.Errorf("node %s: ephemeral owner %v, %v", k, st, err)
			}
		}
		return nil
	})
	// An election of another name is independent.
	other, err := stores[1].Campaign(ctx, "other")
	if err != nil {
		t.Fatalf("a second election: %v", err)
	}
	select {
	case <-other:
		t.Fatal("the other election's leadership ended at once")
	default:
	}
	// Resigning hands over to exactly one waiting campaigner.
	ctxs[0]()
	next, lost := leader(t, 10*time.Second, cs[1], cs[2])
	select {
	case <-lost:
		t.Fatal("the new leader's leadership ended at once")
	default:
	}
	rest := cs[1]
	if next == cs[1] {
		ctxs[1]()
		rest = cs[2]
	} else {
		ctxs[2]()
	}
	mustClosed(t, lost, 10*time.Second, "a resigned leader's lost channel")
	leader(t, 10*time.Second, rest)
	ctxs[1]()
	ctxs[2]()

	// A campaign whose ctx ends while it waits returns ctx's error.
	held, err := stores[0].Campaign(ctx, "held")
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer wcancel()
	if _, err := stores[1].Campaign(wctx, "held"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("campaign while another leads, ctx ended: %v", err)
	}
	// Closing the leader's store ends its leadership; the waiter takes over.
	waiter := startCampaign(ctx, stores[2], "store-2", "held")
	stores[0].Close()
	mustClosed(t, held, 10*time.Second, "the lost channel of a closed store")
	leader(t, 15*time.Second, waiter)
	if _, err := stores[0].Campaign(ctx, "held"); !errors.Is(err, configsvc.ErrClosed) {
		t.Fatalf("campaign on a closed store: %v", err)
	}
	if _, err := stores[1].Campaign(ctx, "../x"); !errors.Is(err, configsvc.ErrInvalid) {
		t.Fatalf("campaign with a bad name: %v", err)
	}
}

// TestFaultElectionLeaderCutOffHandsOver cuts the leader's network (a
// black hole: its client notices only by its own timeouts): the leader
// gives its leadership up, and the waiting campaigner takes over once
// ZooKeeper expired the leader's session, not before.
func TestFaultElectionLeaderCutOffHandsOver(t *testing.T) {
	zk := shared(t)
	proxy := zktest.StartProxy(t, zk.Addr())
	root := fmt.Sprintf("/sluice-test/election-%d", roots.Add(1))
	const session = 2 * time.Second
	cfg := func(c *zkstore.Config) { c.Root, c.SessionTimeout, c.OpTimeout = root, session, time.Second }
	a := mustOpen(t, []string{proxy.Addr()}, cfg)
	b := mustOpen(t, zk.Servers(), cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	ca := startCampaign(ctx, a, "a", "rollouts")
	_, lostA := leader(t, 10*time.Second, ca)
	cb := startCampaign(ctx, b, "b", "rollouts")
	time.Sleep(200 * time.Millisecond)
	if len(cb.won) > 0 {
		t.Fatal("b leads while a does")
	}

	proxy.Blackhole()
	cut := time.Now()
	// a gives up before b can take over: no moment with two leaders.
	var aGaveUp time.Duration
	select {
	case <-lostA:
		aGaveUp = time.Since(cut)
	case <-cb.won:
		t.Fatal("b took over before a gave its leadership up")
	case <-time.After(3 * session):
		t.Fatal("a kept its leadership without a connection")
	}
	_, lostB := leader(t, 4*session, cb)
	took := time.Since(cut)
	t.Logf("a gave up %v after the cut; b led %v after it (session timeout %v)", aGaveUp.Round(time.Millisecond), took.Round(time.Millisecond), session)
	if aGaveUp >= took {
		t.Fatalf("a gave up at %v, after b took over at %v", aGaveUp, took)
	}
	proxy.Heal()
	// a campaigns again after its connection is back: it waits behind b.
	ca2 := startCampaign(ctx, a, "a again", "rollouts")
	time.Sleep(session)
	select {
	case <-ca2.won:
		t.Fatal("a leads again while b does")
	case <-lostB:
		t.Fatal("b lost its leadership when a came back")
	default:
	}
}

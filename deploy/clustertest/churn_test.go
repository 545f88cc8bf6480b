package clustertest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/testkit"
)

// writerPause is each writer's pause between publishes. It keeps a 60 s
// run (about 4 × 60 s / 0.4 s = 600 attempts, half of them conflicts) below
// the store's default retention of 500 revisions, so that every
// acknowledged publish can still be read back from the history.
const writerPause = 400 * time.Millisecond

// outcomes counts what the writers of the churn test got.
type outcomes struct {
	ok, unavailable, conflict, headUnavailable atomic.Int64
}

// TestLeaderChurnWithConditionalPublishes kills the ZooKeeper leader every
// 10 s (SIGKILL, then a restart) while 4 writers publish with If-Match
// through both servers for SLUICE_CLUSTER_CHURN (60s in `make
// test-cluster`, 15s by default). Every 2xx publish must be in the history
// with its content, revisions have no gaps, and requests during elections
// get 503 with Retry-After — never a 500, another status, or a request that
// outlives its 20 s client timeout.
func TestLeaderChurnWithConditionalPublishes(t *testing.T) {
	dur := churnDuration(t)
	ens := startEnsemble(t)
	c := newCluster(t, ens.Servers())
	a, b := c.startServer("server-a"), c.startServer("server-b")
	apis := []*api.Client{c.client(a), c.client(b)}
	mustCreate(t, apis[0], "orders")

	var (
		n     outcomes
		mu    sync.Mutex
		acked []ack
		fails []string
		wg    sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(fails) < 20 {
			fails = append(fails, fmt.Sprintf(format, args...))
		}
	}
	ctx, stop := context.WithTimeout(context.Background(), dur)
	defer stop()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			file := fmt.Sprintf("writer-%d.txt", w)
			for seq := 0; ctx.Err() == nil; seq++ {
				cl := apis[(w+seq)%2]
				head, ok := headRevision(cl, &n, fail)
				if !ok {
					time.Sleep(200 * time.Millisecond)
					continue
				}
				content := fmt.Sprintf("writer %d seq %d\n", w, seq)
				rctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
				began := time.Now()
				rev, err := cl.PutFile(rctx, configsvc.Service("orders"), file, []byte(content), api.WithMessage("clustertest"), api.IfMatch(head))
				cancel()
				var ae *api.Error
				switch {
				case err == nil:
					n.ok.Add(1)
					mu.Lock()
					acked = append(acked, ack{file, content, rev.Number})
					mu.Unlock()
				case !errors.As(err, &ae):
					fail("writer %d: publish through %s: %v after %v (a hang or a dropped connection)", w, cl.Server(), err, time.Since(began).Round(time.Millisecond))
				case ae.Status == http.StatusPreconditionFailed || ae.Status == http.StatusConflict:
					n.conflict.Add(1)
				case ae.Status == http.StatusServiceUnavailable:
					n.unavailable.Add(1)
					if ae.RetryAfter == 0 {
						fail("writer %d: 503 without Retry-After: %v", w, err)
					}
					time.Sleep(200 * time.Millisecond)
				default:
					fail("writer %d: publish through %s: %v", w, cl.Server(), err)
				}
				time.Sleep(writerPause)
			}
		}()
	}

	kills := 0
	ticker := time.NewTicker(10 * time.Second)
	defer ticker.Stop()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-ticker.C:
			if ctx.Err() != nil {
				break
			}
			leader := ens.Leader()
			ens.Kill(leader)
			kills++
			t.Logf("killed ZooKeeper leader (node %d) at ok=%d 503=%d conflict=%d", leader, n.ok.Load(), n.unavailable.Load(), n.conflict.Load())
			time.Sleep(2 * time.Second)
			ens.Restart(leader)
		}
	}
	wg.Wait()
	for _, f := range fails {
		t.Error(f)
	}
	t.Logf("churn %v, %d leader kills: ok %d / 503 %d / conflict %d (head reads answered 503: %d)",
		dur, kills, n.ok.Load(), n.unavailable.Load(), n.conflict.Load(), n.headUnavailable.Load())
	if kills == 0 && dur >= 10*time.Second {
		t.Errorf("no leader was killed")
	}
	if n.ok.Load() == 0 {
		t.Fatalf("no publish succeeded")
	}

	// The ensemble is whole again; read the history through both servers.
	for _, cl := range apis {
		testkit.Eventually(t, 30*time.Second, "history readable through "+cl.Server(), func() error {
			ctx, cancel := callCtx()
			defer cancel()
			_, err := cl.Head(ctx, configsvc.Service("orders"))
			return err
		})
		hist := history(t, cl, "orders")
		if len(hist) > 0 && hist[0].Number != 1 {
			t.Fatalf("%s: history starts at revision %d: retention pruned it, so the run is too fast to check every publish (lower the writers' rate)", cl.Server(), hist[0].Number)
		}
		for i, r := range hist {
			if r.Number != int64(i+1) {
				t.Fatalf("%s: history has revision %d at position %d: a gap", cl.Server(), r.Number, i+1)
			}
		}
		if int64(len(hist)) < int64(len(acked)) {
			t.Fatalf("%s: %d revisions in history, but %d publishes were acknowledged", cl.Server(), len(hist), len(acked))
		}
	}
	sort.Slice(acked, func(i, j int) bool { return acked[i].revision < acked[j].revision })
	for i, k := range acked {
		if i > 0 && acked[i-1].revision == k.revision {
			t.Errorf("revision %d acknowledged twice (%q and %q)", k.revision, acked[i-1].content, k.content)
		}
		got, ok := revisionContent(t, apis[i%2], "orders", k.revision, k.file)
		if !ok || got != k.content {
			t.Errorf("acknowledged revision %d should set %s to %q; history has %q (present %v)", k.revision, k.file, k.content, got, ok)
		}
	}
}

// headRevision reads the head revision of orders through cl; a 503 is
// counted, anything else unexpected is a failure.
func headRevision(cl *api.Client, n *outcomes, fail func(string, ...any)) (int64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	h, err := cl.Head(ctx, configsvc.Service("orders"))
	var ae *api.Error
	switch {
	case err == nil:
		return h.Revision, true
	case errors.As(err, &ae) && ae.Status == http.StatusServiceUnavailable:
		n.headUnavailable.Add(1)
		if ae.RetryAfter == 0 {
			fail("read head: 503 without Retry-After: %v", err)
		}
	default:
		fail("read head through %s: %v", cl.Server(), err)
	}
	return 0, false
}

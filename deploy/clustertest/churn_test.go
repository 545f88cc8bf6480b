package clustertest

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
	apis := []*client{c.client(a), c.client(b)}
	for _, api := range apis {
		api.hc.Timeout = 20 * time.Second
	}
	apis[0].must(t, http.StatusCreated, "PUT", "/v1/services/orders", nil)

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
				api := apis[(w+seq)%2]
				head, ok := headRevision(api, &n, fail)
				if !ok {
					time.Sleep(200 * time.Millisecond)
					continue
				}
				content := fmt.Sprintf("writer %d seq %d\n", w, seq)
				rctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
				began := time.Now()
				r, err := api.putFile(rctx, "orders", file, []byte(content), head)
				cancel()
				switch {
				case err != nil:
					fail("writer %d: publish through %s: %v after %v (a hang or a dropped connection)", w, api.base, err, time.Since(began).Round(time.Millisecond))
				case r.status == http.StatusOK || r.status == http.StatusCreated:
					n.ok.Add(1)
					mu.Lock()
					acked = append(acked, ack{file, content, r.revision()})
					mu.Unlock()
				case r.status == http.StatusPreconditionFailed || r.status == http.StatusConflict:
					n.conflict.Add(1)
				case r.status == http.StatusServiceUnavailable:
					n.unavailable.Add(1)
					if r.header.Get("Retry-After") == "" {
						fail("writer %d: 503 without Retry-After: %v", w, r)
					}
					time.Sleep(200 * time.Millisecond)
				default:
					fail("writer %d: publish through %s: %v", w, api.base, r)
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
	for _, api := range apis {
		var hist []revisionJSON
		waitFor(t, 30*time.Second, "history readable through "+api.base, func() error {
			r, err := api.do(context.Background(), "GET", "/v1/services/orders", nil)
			if err != nil {
				return err
			}
			if r.status != http.StatusOK {
				return fmt.Errorf("%v", r)
			}
			return nil
		})
		hist = api.history(t, "orders")
		if len(hist) > 0 && hist[0].Revision != 1 {
			t.Fatalf("%s: history starts at revision %d: retention pruned it, so the run is too fast to check every publish (lower the writers' rate)", api.base, hist[0].Revision)
		}
		for i, r := range hist {
			if r.Revision != int64(i+1) {
				t.Fatalf("%s: history has revision %d at position %d: a gap", api.base, r.Revision, i+1)
			}
		}
		if int64(len(hist)) < int64(len(acked)) {
			t.Fatalf("%s: %d revisions in history, but %d publishes were acknowledged", api.base, len(hist), len(acked))
		}
	}
	sort.Slice(acked, func(i, j int) bool { return acked[i].revision < acked[j].revision })
	for i, k := range acked {
		if i > 0 && acked[i-1].revision == k.revision {
			t.Errorf("revision %d acknowledged twice (%q and %q)", k.revision, acked[i-1].content, k.content)
		}
		got, ok := apis[i%2].revisionContent(t, "orders", k.revision, k.file)
		if !ok || got != k.content {
			t.Errorf("acknowledged revision %d should set %s to %q; history has %q (present %v)", k.revision, k.file, k.content, got, ok)
		}
	}
}

// headRevision reads the head revision of orders through api; a 503 is
// counted, anything else unexpected is a failure.
func headRevision(api *client, n *outcomes, fail func(string, ...any)) (int64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	r, err := api.do(ctx, "GET", "/v1/services/orders", nil)
	switch {
	case err != nil:
		fail("read head through %s: %v", api.base, err)
		return 0, false
	case r.status == http.StatusServiceUnavailable:
		n.headUnavailable.Add(1)
		if r.header.Get("Retry-After") == "" {
			fail("read head: 503 without Retry-After: %v", r)
		}
		return 0, false
	case r.status != http.StatusOK:
		fail("read head through %s: %v", api.base, r)
		return 0, false
	}
	return r.revision(), true
}

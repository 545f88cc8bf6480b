package clustertest

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/sdk"
)

// ack is a publish a server acknowledged.
type ack struct {
	file, content string
	revision      int64
}

// TestKillServerWhilePublishing: server A is killed with SIGKILL while two
// writers publish (one through A, retrying on B when A is gone; one through
// B). Nothing a writer meant to publish is lost, every acknowledged publish
// is in the history, and an SDK whose event stream ran through A (it lists
// both servers, A first: sdk.Config.Servers) fails over to B and applies
// every revision, none skipped.
func TestKillServerWhilePublishing(t *testing.T) {
	ens := startEnsemble(t)
	c := newCluster(t, ens.Servers())
	a, b := c.startServer("server-a"), c.startServer("server-b")
	apiA, apiB := c.client(a), c.client(b)
	mustCreate(t, apiA, "orders")
	mustPut(t, apiA, "orders", "orders.yaml", "greeting: start\n")
	agent := createToken(t, apiA, "orders-agent", access.RoleAgent, "orders")

	applied := &appliedLog{}
	openSDK(t, sdk.Config{Servers: []string{a.url, b.url}, Token: agent, Metrics: applied, NoRegister: true,
		RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond})

	const perWriter = 40
	writers := []struct {
		name    string
		targets []*api.Client // tried in order on connection errors and 503
	}{
		{"via-a", []*api.Client{apiA, apiB}},
		{"via-b", []*api.Client{apiB}},
	}
	var (
		mu    sync.Mutex
		acked []ack
		wg    sync.WaitGroup
		errs  = make(chan error, len(writers))
	)
	start := make(chan struct{})
	for _, w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			file := w.name + ".txt"
			for seq := range perWriter {
				content := fmt.Sprintf("%s %d\n", w.name, seq)
				rev, err := publishRetrying(w.targets, file, content, 30*time.Second)
				if err != nil {
					errs <- fmt.Errorf("%s seq %d: %w", w.name, seq, err)
					return
				}
				mu.Lock()
				acked = append(acked, ack{file, content, rev})
				mu.Unlock()
				time.Sleep(25 * time.Millisecond)
			}
		}()
	}
	close(start)
	time.Sleep(600 * time.Millisecond)
	a.kill()
	t.Logf("server A killed with SIGKILL")
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	if len(acked) != perWriter*len(writers) {
		t.Fatalf("%d publishes acknowledged, want %d", len(acked), perWriter*len(writers))
	}

	hist := history(t, apiB, "orders")
	head := hist[len(hist)-1].Number
	for i, r := range hist {
		if r.Number != int64(i+1) {
			t.Fatalf("history has revision %d at position %d: gap", r.Number, i+1)
		}
	}
	for _, k := range acked {
		got, ok := revisionContent(t, apiB, "orders", k.revision, k.file)
		if !ok || got != k.content {
			t.Errorf("acknowledged revision %d should set %s to %q; history has %q (present %v)", k.revision, k.file, k.content, got, ok)
		}
	}

	testkit.Eventually(t, 20*time.Second, "the SDK applies the head through server B", func() error {
		revs, _ := applied.snapshot()
		if len(revs) == 0 || revs[len(revs)-1] != head {
			return fmt.Errorf("applied %v, head %d", tail(revs), head)
		}
		return nil
	})
	revs, reconnects := applied.snapshot()
	for i := 1; i < len(revs); i++ {
		if revs[i] != revs[i-1]+1 {
			t.Fatalf("the SDK applied revision %d after %d: it skipped or repeated (applied %v)", revs[i], revs[i-1], revs)
		}
	}
	if reconnects == 0 {
		t.Fatalf("the SDK never reconnected, so its stream did not run through server A")
	}
	t.Logf("%d publishes acknowledged (head %d, %d revisions from duplicated retries of lost replies); SDK applied %d→%d with %d reconnects",
		len(acked), head, head-1-int64(len(acked)), revs[0], revs[len(revs)-1], reconnects)
}

// publishRetrying publishes content to file of service orders through the
// first target that answers, retrying on connection errors, 503 and 409
// until d passes. Any other status is an error.
func publishRetrying(targets []*api.Client, file, content string, d time.Duration) (int64, error) {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		for _, c := range targets {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			rev, err := c.PutFile(ctx, configsvc.Service("orders"), file, []byte(content), api.WithMessage("clustertest"))
			cancel()
			switch st := status(err); {
			case err == nil:
				return rev.Number, nil
			case st == 0, st == http.StatusServiceUnavailable, st == http.StatusConflict:
				last = err
				continue
			default:
				return 0, fmt.Errorf("publish through %s: %w", c.Server(), err)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, fmt.Errorf("no server took the publish within %v: %w", d, last)
}

func tail(revs []int64) []int64 {
	if len(revs) > 5 {
		return revs[len(revs)-5:]
	}
	return revs
}

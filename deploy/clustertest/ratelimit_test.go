package clustertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/testkit"
)

// load sends GETs to every url from 4 goroutines per url, each at most one
// request per 10 ms (so up to about 400 requests a second per url), for d; it returns the 200s and 429s per url and fails
// the test on any other answer.
func load(t *testing.T, urls []string, d time.Duration) (ok, limited []int64) {
	t.Helper()
	ok, limited = make([]int64, len(urls)), make([]int64, len(urls))
	var other atomic.Int64
	var firstOther atomic.Value
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i, u := range urls {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					began := time.Now()
					resp, err := hc.Get(u)
					if err != nil {
						other.Add(1)
						firstOther.CompareAndSwap(nil, err.Error())
						continue
					}
					resp.Body.Close()
					switch resp.StatusCode {
					case http.StatusOK:
						atomic.AddInt64(&ok[i], 1)
					case http.StatusTooManyRequests:
						atomic.AddInt64(&limited[i], 1)
					default:
						other.Add(1)
						firstOther.CompareAndSwap(nil, resp.Status)
					}
					time.Sleep(10*time.Millisecond - time.Since(began))
				}
			}()
		}
	}
	wg.Wait()
	if n := other.Load(); n > 0 {
		t.Fatalf("%d requests got neither 200 nor 429; the first: %v", n, firstOther.Load())
	}
	return ok, limited
}

func sum(v []int64) int64 {
	var s int64
	for _, x := range v {
		s += x
	}
	return s
}

// within fails the test unless got is want±15%.
func within(t *testing.T, what string, got, want float64) {
	t.Helper()
	if got < want*0.85 || got > want*1.15 {
		t.Fatalf("%s admitted %.0f, want %.0f ±15%%", what, got, want)
	} else {
		t.Logf("%s admitted %.0f (want %.0f ±15%%: %+.1f%%)", what, got, want, (got/want-1)*100)
	}
}

// proxyPeers returns the ids of the proxies registered as instances of
// sluice-system.
func proxyPeers(cl *api.Client) ([]string, error) {
	ctx, cancel := callCtx()
	defer cancel()
	list, err := cl.Instances(ctx, configsvc.SystemService)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, in := range list {
		if in.Labels["role"] == "proxy" {
			ids = append(ids, in.ID)
		}
	}
	return ids, nil
}

// peersSeen returns the peer count proxy p divides cluster rates by, from
// its last "cluster rate limits re-divided" log line (1 before any).
func peersSeen(p *proxy) (int, error) {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return 0, err
	}
	n := 1
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, "cluster rate limits re-divided") {
			continue
		}
		var e struct{ Proxies int }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			return 0, fmt.Errorf("log line %q: %v", line, err)
		}
		n = e.Proxies
	}
	return n, nil
}

// waitPeers waits until every proxy divides by want.
func waitPeers(t *testing.T, want int, ps ...*proxy) {
	t.Helper()
	for _, p := range ps {
		testkit.Eventually(t, 30*time.Second, fmt.Sprintf("%s divides cluster rates by %d", p.name, want), func() error {
			n, err := peersSeen(p)
			if err != nil {
				return err
			}
			if n != want {
				return fmt.Errorf("divides by %d", n)
			}
			return nil
		})
	}
}

// TestClusterRateLimitAcrossProxies: a route's rate_limit with scope
// cluster is shared by the live proxies (registered in ZooKeeper as
// instances of sluice-system): two proxies under load together admit the
// route's rate ±15%; when one leaves, the other takes the whole rate.
func TestClusterRateLimitAcrossProxies(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") }))
	t.Cleanup(backend.Close)

	ens := startEnsemble(t)
	c := newCluster(t, ens.Servers())
	srv := c.client(c.startServer("server"))
	const rps, burst = 100, 20
	route := fmt.Sprintf("routes:\n  - name: limited\n    upstream: {static: [%q]}\n    rate_limit: {rps: %d, burst: %d, scope: cluster}\n",
		strings.TrimPrefix(backend.URL, "http://"), rps, burst)
	mustCreate(t, srv, configsvc.SystemService)
	mustPut(t, srv, configsvc.SystemService, configsvc.RoutesFile, route)
	pa, pb := c.startProxy("proxy-a"), c.startProxy("proxy-b")
	testkit.Eventually(t, 30*time.Second, "both proxies registered", func() error {
		ids, err := proxyPeers(srv)
		if err != nil {
			return err
		}
		if len(ids) != 2 {
			return fmt.Errorf("registered proxies %v", ids)
		}
		return nil
	})
	testkit.Eventually(t, 30*time.Second, "both proxies route", func() error {
		for _, p := range []*proxy{pa, pb} {
			st, _, body, err := get(p.url+"/", "")
			if err != nil {
				return err
			}
			if st != http.StatusOK && st != http.StatusTooManyRequests {
				return fmt.Errorf("%s: HTTP %d %s", p.name, st, body)
			}
		}
		return nil
	})
	waitPeers(t, 2, pa, pb)
	time.Sleep(time.Second) // let the buckets refill after the probes

	const window = 10 * time.Second
	ok, limited := load(t, []string{pa.url + "/", pb.url + "/"}, window)
	t.Logf("two proxies, %v: proxy-a %d ok / %d limited, proxy-b %d ok / %d limited", window, ok[0], limited[0], ok[1], limited[1])
	if limited[0] == 0 || limited[1] == 0 {
		t.Fatalf("a proxy limited nothing: the load did not exceed its share")
	}
	within(t, "two proxies together", float64(sum(ok)), rps*window.Seconds()+burst)

	pb.stop()
	testkit.Eventually(t, 30*time.Second, "proxy-b deregistered", func() error {
		ids, err := proxyPeers(srv)
		if err != nil {
			return err
		}
		if len(ids) != 1 {
			return fmt.Errorf("registered proxies %v", ids)
		}
		return nil
	})
	waitPeers(t, 1, pa)
	const alone = 5 * time.Second
	ok, limited = load(t, []string{pa.url + "/"}, alone)
	t.Logf("proxy-a alone, %v: %d ok / %d limited", alone, ok[0], limited[0])
	within(t, "proxy-a alone", float64(ok[0]), rps*alone.Seconds()+burst)
}

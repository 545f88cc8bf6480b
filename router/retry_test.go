package router_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/router"
)

// TestFaultRetryStormHeldToBudget: every instance of a route answers 503
// and the route retries 503 three times. Without a budget each request
// costs the upstream four tries; with the default budget (retries in
// flight at most 20 % of the route's tries in flight, at least 3) at most
// one try in five is a retry: the upstream sees at most 1.25 times the
// client's requests, plus the few retries the minimum lets through.
func TestFaultRetryStormHeldToBudget(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		const n, conc = 3000, 32
		for _, c := range []struct {
			name     string
			budget   *router.RetryBudget
			min, max float64 // bounds of upstream tries per request
		}{
			{"default budget", nil, 1.02, 1.25 + 3.0/n},
			{"budget of 100 percent", &router.RetryBudget{Percent: 100, MinConcurrency: 1000}, 3.9, 4},
		} {
			t.Run(c.name, func(t *testing.T) {
				var hits atomic.Int64
				fail := func(w http.ResponseWriter, r *http.Request) {
					hits.Add(1)
					time.Sleep(2 * time.Millisecond) // a failing upstream is a busy one: tries, not the proxy, take the time
					w.WriteHeader(http.StatusServiceUnavailable)
				}
				var addrs []string
				for _, name := range []string{"a", "b", "c", "d", "e"} {
					addrs = append(addrs, startBackend(t, name, fail).addr)
				}
				rt := staticRoute("storm", "/", addrs...)
				rt.Retries = &router.RetryPolicy{Attempts: 3, On: []router.RetryOn{"503"}, Backoff: &router.Backoff{Base: time.Millisecond}, Budget: c.budget}
				p := newProxy(t, router.Config{}, []router.Route{rt})
				statuses := p.hammer(t, n, conc, func(int) *http.Request { return p.getReq("/") })
				if statuses[http.StatusServiceUnavailable] != n {
					t.Fatalf("statuses %v, want %d × 503 (the upstream's answer)", statuses, n)
				}
				ratio := float64(hits.Load()) / n
				t.Logf("%d requests cost the upstream %d tries (%.3f×); %d retries sent, %d refused by the budget",
					n, hits.Load(), ratio, p.metrics.count(p.metrics.retried, "storm"), p.metrics.count(p.metrics.exhausted, "storm"))
				if ratio < c.min || ratio > c.max {
					t.Errorf("upstream tries per request %.3f, want between %g and %g", ratio, c.min, c.max)
				}
				if got := p.metrics.count(p.metrics.retried, "storm"); int64(got) != hits.Load()-n {
					t.Errorf("retries counted %d, want %d (tries beyond the first)", got, hits.Load()-n)
				}
				if c.budget == nil && p.metrics.count(p.metrics.exhausted, "storm") == 0 {
					t.Error("no retry was refused by the budget")
				}
				if rs := routeState(t, p.r, "storm"); rs.Retries == nil || rs.Retries.Retrying != 0 || rs.Retries.Attempts != 3 {
					t.Errorf("retries state %+v, want attempts 3 and none retrying after the storm", rs.Retries)
				}
			})
		}
	})
}

// TestRetryOnStatusGoesToAnotherInstance: a 503 is retried on the other
// instance, never on the same one, and the client gets the good answer; a
// request that is not idempotent is not retried unless the route says so.
func TestRetryOnStatusGoesToAnotherInstance(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		bad := startBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
		var got atomic.Value
		good := startBackend(t, "good", func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			got.Store(string(b))
			io.WriteString(w, "good")
		})
		rt := staticRoute("r", "/", bad.addr, good.addr)
		rt.Retries = &router.RetryPolicy{Attempts: 2, On: []router.RetryOn{"503"}}
		p := newProxy(t, router.Config{}, []router.Route{rt})
		for i := range 20 {
			if res := p.get(t, "/"); res.status != 200 || res.body != "good" {
				t.Fatalf("GET %d: %d %q, want 200 from good after a retry", i, res.status, res.body)
			}
		}
		if h := bad.hits.Load(); h < 5 || h > 20 {
			t.Errorf("bad saw %d of 20 requests, want about half and each at most once", h)
		}

		post := func(body string) int {
			t.Helper()
			resp, err := p.client.Post(p.url+"/", "text/plain", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		failed := 0
		for range 10 {
			if post("x") == http.StatusServiceUnavailable {
				failed++
			}
		}
		if failed != 5 {
			t.Errorf("%d of 10 POSTs got bad's 503, want 5: a POST is not retried by default", failed)
		}

		rt.Retries.NonIdempotent = true
		if err := p.r.Update([]router.Route{rt}); err != nil {
			t.Fatal(err)
		}
		body := strings.Repeat("payload ", 1000)
		for i := range 10 {
			if s := post(body); s != 200 {
				t.Fatalf("POST %d with non_idempotent: %d, want 200 after a retry", i, s)
			}
			if got.Load() != body {
				t.Fatalf("good received a body of %d bytes, want the %d sent (replayed intact)", len(got.Load().(string)), len(body))
			}
		}
	})
}

// TestRetryBodiesOnlyWhenBuffered: a body longer than MaxRetryBodyBytes, or
// of unknown length, is streamed and never retried; one within it is.
func TestRetryBodiesOnlyWhenBuffered(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		dead := startBackend(t, "dead", nil)
		dead.stop()
		var lastLen atomic.Int64
		ok := startBackend(t, "ok", func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			lastLen.Store(int64(len(b)))
		})
		rt := staticRoute("r", "/", dead.addr, ok.addr)
		rt.Retries = &router.RetryPolicy{Attempts: 1}
		p := newProxy(t, router.Config{}, []router.Route{rt})
		put := func(body io.Reader, length int64) int {
			t.Helper()
			req, _ := http.NewRequest(http.MethodPut, p.url+"/", body)
			req.ContentLength = length
			resp, err := p.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		count := func(mk func() (io.Reader, int64)) (okCount, failed int) {
			for range 10 {
				r, l := mk()
				if put(r, l) == 200 {
					okCount++
				} else {
					failed++
				}
			}
			return
		}
		small := bytes.Repeat([]byte("s"), router.MaxRetryBodyBytes)
		if o, f := count(func() (io.Reader, int64) { return bytes.NewReader(small), int64(len(small)) }); o != 10 || f != 0 {
			t.Errorf("PUT of %d bytes: %d ok, %d failed; want all retried on ok", len(small), o, f)
		}
		if lastLen.Load() != int64(len(small)) {
			t.Errorf("ok received %d bytes, want %d", lastLen.Load(), len(small))
		}
		large := bytes.Repeat([]byte("l"), router.MaxRetryBodyBytes+1)
		if o, f := count(func() (io.Reader, int64) { return bytes.NewReader(large), int64(len(large)) }); f != 5 || o != 5 {
			t.Errorf("PUT of %d bytes: %d ok, %d failed; want half failed (never retried)", len(large), o, f)
		}
		if o, f := count(func() (io.Reader, int64) { return io.MultiReader(strings.NewReader("chunked")), -1 }); f != 5 || o != 5 {
			t.Errorf("chunked PUT: %d ok, %d failed; want half failed (never retried)", o, f)
		}
	})
}

// TestRetryPerTryTimeout: a try that gets no response headers within
// per_try_timeout is cut and, with reset in on, retried elsewhere; without
// a retry left the client gets 504.
func TestRetryPerTryTimeout(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		slow := startHanging(t, "slow")
		fast := startBackend(t, "fast", nil)
		rt := staticRoute("r", "/", slow.addr, fast.addr)
		rt.Retries = &router.RetryPolicy{Attempts: 1, PerTryTimeout: 100 * time.Millisecond, On: []router.RetryOn{router.RetryReset}}
		p := newProxy(t, router.Config{}, []router.Route{rt})
		start := time.Now()
		for i := range 6 {
			if res := p.get(t, "/"); res.status != 200 || res.body != "fast" {
				t.Fatalf("GET %d: %d %q, want fast's answer", i, res.status, res.body)
			}
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("6 requests took %v; a slow try must be cut after 100ms", d)
		}
		if slow.hits.Load() == 0 {
			t.Fatal("slow was never tried")
		}
		only := staticRoute("r", "/", slow.addr)
		only.Retries = rt.Retries
		if err := p.r.Update([]router.Route{only}); err != nil {
			t.Fatal(err)
		}
		if res := p.get(t, "/"); res.status != http.StatusGatewayTimeout {
			t.Fatalf("the only instance timed out: %d %s, want 504", res.status, res.body)
		}
	})
}

// TestRetryBufferedBodyKeepsLongResponse: a body kept for retries is read
// to its end, so the body timeout (on the client's connection) is lifted
// and a response streaming for longer than it arrives whole.
func TestRetryBufferedBodyKeepsLongResponse(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "stream", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			for i := range 6 {
				fmt.Fprintf(w, "chunk %d\n", i)
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
		})
		rt := staticRoute("r", "/", b.addr)
		rt.Retries = &router.RetryPolicy{Attempts: 1}
		p := newProxy(t, router.Config{BodyTimeout: 200 * time.Millisecond}, []router.Route{rt})
		req, _ := http.NewRequest(http.MethodPut, p.url+"/", strings.NewReader("body"))
		resp, err := p.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil || strings.Count(string(got), "chunk") != 6 {
			t.Fatalf("response %q, %v; want 6 chunks over 600ms, past the 200ms body timeout", got, err)
		}
	})
}

package router_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/ratelimit"
)

// TestAttackSlowBodyHoldsUpstream: a client that sends its headers and then
// trickles (or stalls) its body must not hold an upstream connection: past
// BodyTimeout the proxy answers 408, the upstream request is aborted (or,
// for a short body an engine reads whole before forwarding, never sent),
// and the instance is not blamed (its breaker stays closed). Both a short
// body and one longer than router.MaxRetryBodyBytes (streamed by every
// engine) are stalled.
func TestAttackSlowBodyHoldsUpstream(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		for _, length := range []int{1000, router.MaxRetryBodyBytes + 1000} {
			t.Run(fmt.Sprint(length), func(t *testing.T) { testSlowBody(t, length) })
		}
	})
}

func testSlowBody(t *testing.T, length int) {
	upstreamDone := make(chan error, 1)
	var posts atomic.Int64
	b := startBackend(t, "orders-1", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			_, _ = io.WriteString(w, "orders-1")
			return
		}
		posts.Add(1)
		_, err := io.ReadAll(r.Body)
		upstreamDone <- err
	})
	rt := staticRoute("orders", "/", b.addr)
	rt.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 1, OpenFor: time.Hour}
	p := newProxy(t, router.Config{BodyTimeout: 300 * time.Millisecond}, []router.Route{rt})

	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	// A long body's first 16 KiB arrive: more than any engine reads before
	// forwarding (fasthttp reads up to 8 KiB).
	sent := "0123456789"
	if length > router.MaxRetryBodyBytes {
		sent = strings.Repeat("x", 16<<10)
	}
	if _, err := fmt.Fprintf(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", length, sent); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body within 5 s: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body: %d %s, want 408", resp.StatusCode, body)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("answered after %s, want about the 300ms body timeout", took)
	}
	if posts.Load() > 0 {
		select {
		case err := <-upstreamDone:
			if err == nil {
				t.Fatal("the upstream read a complete body")
			}
		case <-time.After(3 * time.Second):
			t.Fatal("the upstream request is still held 3 s after the body timeout")
		}
	} else if length > router.MaxRetryBodyBytes {
		t.Fatal("a long body was not streamed to the upstream as it came")
	}
	if res := p.get(t, "/"); res.status != 200 || res.body != "orders-1" {
		t.Fatalf("after a client's slow body the instance answers %d %q; its breaker must not have tripped", res.status, res.body)
	}
	if p.metrics.opened("orders/" + b.addr) {
		t.Fatal("the slow client tripped the instance's breaker")
	}
}

// TestSlowBodyWithinTimeoutAndLongResponse: a body that arrives in time
// passes, and a response that streams longer than the body timeout is not
// cut by it.
func TestSlowBodyWithinTimeoutAndLongResponse(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "stream", func(w http.ResponseWriter, r *http.Request) {
			got, _ := io.ReadAll(r.Body)
			for i := 0; i < 5; i++ {
				fmt.Fprintf(w, "%s-%d;", got, i)
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
		})
		p := newProxy(t, router.Config{BodyTimeout: 300 * time.Millisecond}, []router.Route{staticRoute("s", "/", b.addr)})
		pr, pw := io.Pipe()
		go func() {
			_, _ = io.WriteString(pw, "ab")
			time.Sleep(100 * time.Millisecond)
			_, _ = io.WriteString(pw, "c")
			pw.Close()
		}()
		resp, err := p.client.Post(p.url+"/", "text/plain", pr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || string(got) != "abc-0;abc-1;abc-2;abc-3;abc-4;" {
			t.Fatalf("%d %q %v: want the whole 500ms stream", resp.StatusCode, got, err)
		}
	})
}

// TestAttackXRealIPSpoofed: a client's own X-Real-IP must not reach the
// upstream (which may take it for the client's address); a trusted proxy's
// is kept.
func TestAttackXRealIPSpoofed(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "orders-1", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, r.Header.Get("X-Real-IP"))
		})
		routes := []router.Route{staticRoute("orders", "/", b.addr)}
		untrusted := newProxy(t, router.Config{}, routes)
		if res := untrusted.do(t, "GET", "/", map[string]string{"X-Real-IP": "10.9.9.9"}); res.status != 200 || res.body != "" {
			t.Fatalf("untrusted client's X-Real-IP reached the upstream: %d %q", res.status, res.body)
		}
		trusted := newProxy(t, router.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, routes)
		if res := trusted.do(t, "GET", "/", map[string]string{"X-Real-IP": "10.9.9.9"}); res.body != "10.9.9.9" {
			t.Fatalf("trusted proxy's X-Real-IP dropped: %q", res.body)
		}
	})
}

// TestAttackIPv6ClientRotatesAddresses: a client owns a whole /64 and could
// take a fresh bucket per address; IPv6 clients are keyed per /64.
func TestAttackIPv6ClientRotatesAddresses(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		// The test client is on loopback: trust it to say the client's address.
		p := limitedProxy(t, router.RateLimit{RPS: 1, Burst: 2, Key: "ip"}, router.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
		allowed := 0
		for i := 1; i <= 20; i++ {
			if res := p.do(t, "GET", "/", map[string]string{"X-Forwarded-For": fmt.Sprintf("2001:db8:1:2::%x", i)}); res.status == 200 {
				allowed++
			}
		}
		if allowed != 2 {
			t.Fatalf("20 addresses of one /64 got %d requests through, want the burst of 2", allowed)
		}
		if res := p.do(t, "GET", "/", map[string]string{"X-Forwarded-For": "2001:db8:1:3::1"}); res.status != 200 {
			t.Fatalf("another /64 was limited: %d", res.status)
		}
		if res := p.do(t, "GET", "/", map[string]string{"X-Forwarded-For": "::ffff:192.0.2.1"}); res.status != 200 {
			t.Fatalf("an IPv4-mapped client was limited: %d", res.status)
		}
		if res := p.do(t, "GET", "/", map[string]string{"X-Forwarded-For": "192.0.2.2"}); res.status != 200 || strings.Contains(res.body, "rate") {
			t.Fatalf("another IPv4 client was limited: %d", res.status)
		}
	})
}

// TestAttackHeaderKeyFloodsLimiter: with rate_limit key header:X-User, an
// attacker sends a stream of made-up user names. Today's users keep their
// own budgets, and a user arriving after the flood gets a bucket of its
// own, not a shared overflow bucket the flood has drained.
func TestAttackHeaderKeyFloodsLimiter(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		p := limitedProxy(t, router.RateLimit{RPS: 1, Burst: 3, Key: "header:X-User"}, router.Config{Limiters: ratelimit.New(ratelimit.Config{MaxKeys: 32})})
		for i := 0; i < 3; i++ {
			if res := p.do(t, "GET", "/", map[string]string{"X-User": "alice"}); res.status != 200 {
				t.Fatalf("alice's request %d within her burst: %d", i, res.status)
			}
		}
		for i := 0; i < 400; i++ {
			p.do(t, "GET", "/", map[string]string{"X-User": fmt.Sprintf("made-up-%d-%s", i, strings.Repeat("x", 200))})
		}
		if res := p.do(t, "GET", "/", map[string]string{"X-User": "alice"}); res.status != http.StatusTooManyRequests {
			t.Fatalf("alice past her burst after the flood: %d, want 429 (the flood reset her bucket)", res.status)
		}
		for _, user := range []string{"bob", "carol", "dave"} {
			if res := p.do(t, "GET", "/", map[string]string{"X-User": user}); res.status != 200 {
				t.Fatalf("%s's first request after the flood: %d, want 200", user, res.status)
			}
		}
	})
}

// limitedProxy serves one route, rate limited by rl, to a fresh backend,
// with cfg and a clock that does not move (no bucket refills).
func limitedProxy(t *testing.T, rl router.RateLimit, cfg router.Config) *proxyEnv {
	t.Helper()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cfg.Now = func() time.Time { return now }
	rt := staticRoute("orders", "/", startBackend(t, "orders-1", nil).addr)
	rt.RateLimit = &rl
	return newProxy(t, cfg, []router.Route{rt})
}

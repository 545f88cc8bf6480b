package router_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/router"
)

// The HTTP semantics every engine must keep: 100-continue, trailers,
// hop-by-hop headers, streamed bodies both ways, connection reuse.

// TestExpectContinue: a client that waits for 100 Continue before sending
// its body gets it promptly, and the body arrives.
func TestExpectContinue(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
			got, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%d:%s", len(got), r.Header.Get("Expect"))
		})
		p := newProxy(t, router.Config{}, []router.Route{staticRoute("b", "/", b.addr)})
		tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
		defer tr.CloseIdleConnections()
		req, _ := http.NewRequest(http.MethodPost, p.url+"/up", strings.NewReader(strings.Repeat("x", 1000)))
		req.Header.Set("Expect", "100-continue")
		start := time.Now()
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "1000:") {
			t.Fatalf("%d %q, want the 1000-byte body through", resp.StatusCode, body)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("took %s: the client waited out its 5 s for a 100 Continue that never came", d)
		}
	})
}

// TestTrailersPassThrough: trailers an upstream announces reach the client.
func TestTrailersPassThrough(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Trailer", "X-Checksum")
			io.WriteString(w, "part one;")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part two")
			w.Header().Set("X-Checksum", "abc123")
		})
		p := newProxy(t, router.Config{}, []router.Route{staticRoute("b", "/", b.addr)})
		resp, err := p.client.Get(p.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "part one;part two" {
			t.Fatalf("body %q", body)
		}
		if got := resp.Trailer.Get("X-Checksum"); got != "abc123" {
			t.Fatalf("trailer X-Checksum = %q, want abc123 (trailers %v)", got, resp.Trailer)
		}
	})
}

// TestHopByHopHeadersRemoved: Connection, Keep-Alive, Proxy-* and the
// fields Connection names never cross the proxy, either way; end-to-end
// fields (repeated Set-Cookie included) do.
func TestHopByHopHeadersRemoved(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
			for _, h := range []string{"X-Secret", "Keep-Alive", "Proxy-Authorization", "X-End-To-End"} {
				if v := r.Header.Get(h); v != "" {
					w.Header().Add("X-Saw", h+"="+v)
				}
			}
			w.Header().Set("Connection", "X-Upstream-Private")
			w.Header().Set("X-Upstream-Private", "1")
			w.Header().Set("Keep-Alive", "timeout=5")
			w.Header().Add("Set-Cookie", "a=1")
			w.Header().Add("Set-Cookie", "b=2")
			io.WriteString(w, "ok")
		})
		p := newProxy(t, router.Config{}, []router.Route{staticRoute("b", "/", b.addr)})
		res := p.do(t, "GET", "/", map[string]string{
			"Connection": "X-Secret", "X-Secret": "s", "Keep-Alive": "timeout=9",
			"Proxy-Authorization": "Basic eDp5", "X-End-To-End": "kept",
		})
		if got := res.header.Values("X-Saw"); len(got) != 1 || got[0] != "X-End-To-End=kept" {
			t.Errorf("upstream saw %q, want only X-End-To-End", got)
		}
		for _, h := range []string{"X-Upstream-Private", "Keep-Alive"} {
			if v := res.header.Get(h); v != "" {
				t.Errorf("client got hop-by-hop %s: %q", h, v)
			}
		}
		if got := res.header.Values("Set-Cookie"); len(got) != 2 {
			t.Errorf("Set-Cookie %q, want both", got)
		}
	})
}

// TestHeadAndNoContent: a HEAD answer keeps its Content-Length and has no
// body; a 204 has none either; the connection is reused after both.
func TestHeadAndNoContent(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/none" {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		})
		p := newProxy(t, router.Config{}, []router.Route{staticRoute("b", "/", b.addr)})
		for range 3 {
			req, _ := http.NewRequest(http.MethodHead, p.url+"/", nil)
			resp, err := p.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.ContentLength != 5 {
				t.Fatalf("HEAD: %d length %d, want 200 length 5", resp.StatusCode, resp.ContentLength)
			}
			if res := p.get(t, "/none"); res.status != 204 || res.body != "" {
				t.Fatalf("204: %d %q", res.status, res.body)
			}
			if res := p.get(t, "/"); res.body != "hello" {
				t.Fatalf("GET after HEAD: %q", res.body)
			}
		}
	})
}

// TestLargeBodiesStream: 8 MiB go up and 8 MiB come down through the
// proxy, and neither is held whole: the upstream answers only once it has
// 1 MiB of the request while the client still holds the rest back, and
// the client reads the first 1 MiB of the answer while the upstream holds
// the rest back. Both bodies arrive intact.
func TestLargeBodiesStream(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		const size, part = 8 << 20, 1 << 20
		upGot := make(chan struct{})
		clientGot := make(chan struct{})
		b := startBackend(t, "b", func(w http.ResponseWriter, r *http.Request) {
			h := sha256.New()
			if _, err := io.CopyN(h, r.Body, part); err != nil {
				t.Errorf("upstream: first part: %v", err)
				return
			}
			close(upGot)
			n, _ := io.Copy(h, r.Body)
			w.Header().Set("X-Request-Sum", fmt.Sprintf("%d:%x", part+n, h.Sum(nil)))
			chunk := bytes.Repeat([]byte("y"), 64<<10)
			for i := 0; i < size/len(chunk); i++ {
				if i == part/len(chunk) {
					w.(http.Flusher).Flush()
					select {
					case <-clientGot:
					case <-time.After(10 * time.Second):
						t.Error("upstream: the client never got the first MiB: the response is buffered")
						return
					}
				}
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		})
		p := newProxy(t, router.Config{}, []router.Route{staticRoute("b", "/", b.addr)})
		pr, pw := io.Pipe()
		want := sha256.New()
		go func() {
			data := bytes.Repeat([]byte("x"), 64<<10)
			for i := 0; i < size/len(data); i++ {
				if i == part/len(data)+1 {
					select {
					case <-upGot:
					case <-time.After(10 * time.Second):
						pw.CloseWithError(fmt.Errorf("the upstream never got the first MiB: the request is buffered"))
						return
					}
				}
				want.Write(data)
				if _, err := pw.Write(data); err != nil {
					return
				}
			}
			pw.Close()
		}()
		resp, err := p.client.Post(p.url+"/", "application/octet-stream", pr) // chunked: length unknown
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := io.CopyN(io.Discard, resp.Body, part); err != nil {
			t.Fatalf("first MiB of the answer: %v", err)
		}
		close(clientGot)
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || part+n != size {
			t.Fatalf("answer: %d bytes, %v; want %d", part+n, err, size)
		}
		if got, exp := resp.Header.Get("X-Request-Sum"), fmt.Sprintf("%d:%x", size, want.Sum(nil)); got != exp {
			t.Fatalf("upstream got %s, want %s", got, exp)
		}
	})
}

// TestUpstreamConnectionsReused: sequential and concurrent requests reuse
// upstream connections (a few, not one per request), and every
// exchange's in-flight count is back to 0 after streamed, short and failed
// responses.
func TestUpstreamConnectionsReused(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		var conns atomic.Int64
		b := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/big" {
				w.Write(bytes.Repeat([]byte("z"), 200<<10))
				return
			}
			if r.URL.Path == "/fail" {
				w.WriteHeader(http.StatusInternalServerError)
			}
			io.WriteString(w, "ok")
		}))
		b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		b.Start()
		t.Cleanup(b.Close)
		p := newProxy(t, router.Config{}, []router.Route{staticRoute("b", "/", b.Listener.Addr().String())})
		for i := 0; i < 200; i++ {
			path := []string{"/", "/big", "/fail"}[i%3]
			p.get(t, path)
		}
		if n := conns.Load(); n > 3 {
			t.Errorf("200 sequential requests opened %d upstream connections, want them reused", n)
		}
		statuses := p.hammer(t, 400, 8, func(i int) *http.Request { return p.getReq([]string{"/", "/big"}[i%2]) })
		if statuses[200] != 400 {
			t.Fatalf("statuses %v", statuses)
		}
		if n := conns.Load(); n > 3+8 {
			t.Errorf("400 requests from 8 clients opened %d upstream connections in all, want at most about 8 more", n)
		}
		for _, in := range routeState(t, p.r, "b").Instances {
			if in.InFlight != 0 {
				t.Errorf("instance %s: %d requests still in flight after all ended", in.ID, in.InFlight)
			}
		}
	})
}

// TestHopHeaderHelpers: the byte helpers engines share read names and
// token lists in any ASCII case, and only ASCII: "K" (U+212A, Kelvin)
// folds to "k" in Unicode, which would make "\u212Aeep-Alive" a hop-by-hop
// field for one reader and not for another.
func TestHopHeaderHelpers(t *testing.T) {
	for name, want := range map[string]bool{
		"connection": true, "KEEP-ALIVE": true, "proxy-authorization": true, "te": true, "Transfer-encoding": true,
		"X-Connection": false, "Content-Length": false, "\u212Aeep-Alive": false, "": false,
		"Proxy-Authorization-Extra-Long": false,
	} {
		if got := router.IsHopHeaderFold([]byte(name)); got != want {
			t.Errorf("IsHopHeaderFold(%q) = %t, want %t", name, got, want)
		}
	}
	for _, tc := range []struct {
		v, token string
		want     bool
	}{
		{"keep-alive, Upgrade", "upgrade", true},
		{" close\t", "close", true},
		{"x-a,X-B", "x-b", true},
		{"closed", "close", false},
		{"", "close", false},
		{"\u212Aeep-alive", "keep-alive", false},
	} {
		if got := router.HeaderHasToken([]byte(tc.v), tc.token); got != tc.want {
			t.Errorf("HeaderHasToken(%q, %q) = %t, want %t", tc.v, tc.token, got, tc.want)
		}
	}
}

package proxyserver_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/proxyserver"
)

// pinReads is a store whose pin lookups are counted.
type pinReads struct {
	configsvc.Store
	recs *countedRecords
}

func (p pinReads) Records() configsvc.RecordStore { return p.recs }

type countedRecords struct {
	configsvc.RecordStore
	pinGets atomic.Int64
}

func (c *countedRecords) Get(ctx context.Context, coll, id string) ([]byte, error) {
	if coll == access.PinsCollection {
		c.pinGets.Add(1)
	}
	return c.RecordStore.Get(ctx, coll, id)
}

// servedProxy runs Serve on a bbolt store with routes and opts until the
// test ends and returns the proxy's address and the store.
func servedProxy(t *testing.T, routes string, opts proxyserver.Options) (string, pinReads) {
	t.Helper()
	bolt := bolttest.MustOpen(t, boltstore.Options{}) // closed after Serve returns: cleanups run last first
	store := pinReads{Store: bolt, recs: &countedRecords{RecordStore: bolt.Records()}}
	ctx := context.Background()
	if err := store.Create(ctx, configsvc.Service(configsvc.SystemService)); err != nil {
		t.Fatal(err)
	}
	publish(t, store, 0, routes)
	opts.RetryInterval = 20 * time.Millisecond
	opts.StateInterval = -1
	opts.NoRegister = true
	addr, _ := startServing(t, store, opts)
	return addr, store
}

// waitRouted polls addr+path until it answers want.
func waitRouted(t *testing.T, url string, want int) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	testkit.Eventually(t, 5*time.Second, fmt.Sprintf("%s answering %d", url, want), func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// closedWithin reports whether the server closes conn within d while the
// client keeps it busy with write every step (nil: stay silent).
func closedWithin(conn net.Conn, d, step time.Duration, write func(i int) string) bool {
	deadline := time.Now().Add(d)
	buf := make([]byte, 512)
	for i := 0; time.Now().Before(deadline); i++ {
		if write != nil {
			if _, err := io.WriteString(conn, write(i)); err != nil {
				return true
			}
		}
		_ = conn.SetReadDeadline(time.Now().Add(step))
		if _, err := conn.Read(buf); err != nil {
			var ne net.Error
			if !(errors.As(err, &ne) && ne.Timeout()) {
				return true // EOF or reset: closed by the server
			}
		}
	}
	return false
}

// TestAttackSlowLorisHoldsConnections: clients that send their headers a
// line at a time, or open keep-alive connections and go quiet, are cut off
// after the configured timeouts instead of holding the proxy's connections.
func TestAttackSlowLorisHoldsConnections(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		addr, _ := servedProxy(t, "routes: []\n", proxyserver.Options{ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
		waitRouted(t, "http://"+addr+"/x", http.StatusNotFound)

		loris, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer loris.Close()
		start := time.Now()
		if !closedWithin(loris, 3*time.Second, 100*time.Millisecond, func(i int) string {
			if i == 0 {
				return "GET / HTTP/1.1\r\nHost: x\r\n"
			}
			return "X-Slow: a\r\n"
		}) {
			t.Fatal("a client trickling its headers kept its connection for 3 s (read-header timeout 300ms)")
		}
		if took := time.Since(start); took < 250*time.Millisecond {
			t.Fatalf("cut off after %s, before the read-header timeout", took)
		}

		idle, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer idle.Close()
		if _, err := io.WriteString(idle, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if !closedWithin(idle, 3*time.Second, 100*time.Millisecond, nil) {
			t.Fatal("an idle keep-alive connection stayed open for 3 s (idle timeout 300ms)")
		}
	})
}

// TestAttackSlowBodyThroughServe: ReadTimeout reaches the router: a stalled
// body is answered 408 and the upstream request ends (or, on an engine
// that reads a short body whole before forwarding it, never starts).
func TestAttackSlowBodyThroughServe(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		upstreamDone := make(chan error, 1)
		var posts atomic.Int64
		up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				posts.Add(1)
			}
			_, err := io.ReadAll(r.Body)
			upstreamDone <- err
		})
		addr, _ := servedProxy(t, "routes:\n  - name: up\n    upstream: {static: [\""+up+"\"]}\n", proxyserver.Options{ReadTimeout: 300 * time.Millisecond})
		waitRouted(t, "http://"+addr+"/", http.StatusOK)
		<-upstreamDone // the GET of waitRouted

		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer to a stalled body: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("stalled body: %d, want 408", resp.StatusCode)
		}
		if posts.Load() == 0 {
			return // never sent upstream
		}
		select {
		case err := <-upstreamDone:
			if err == nil {
				t.Fatal("the upstream read a complete body")
			}
		case <-time.After(3 * time.Second):
			t.Fatal("the upstream request is still held 3 s after the read timeout")
		}
	})
}

// TestAttackMalformedPinsReachStore: X-Sluice-Pin values that cannot be
// pin tokens (wrong prefix, length or alphabet, huge) are answered 403
// "unknown" without a store read, so that a flood of them costs no store
// load.
func TestAttackMalformedPinsReachStore(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
		addr, store := servedProxy(t, "routes:\n  - name: up\n    upstream: {static: [\""+up+"\"]}\n", proxyserver.Options{})
		waitRouted(t, "http://"+addr+"/", http.StatusOK)
		good := access.PinTokenPrefix + strings.Repeat("A", 43)
		client := &http.Client{Timeout: 5 * time.Second}
		defer client.CloseIdleConnections()
		for _, bad := range []string{
			"x", "slp_", good[:len(good)-1], good + "A", "slc_" + good[4:], access.PinTokenPrefix + strings.Repeat("!", 43),
			access.PinTokenPrefix + strings.Repeat("A", 42) + "=", access.PinTokenPrefix + strings.Repeat("\u00e9", 21) + "A", strings.Repeat("slp_", 4000),
		} {
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			req.Header.Set(router.PinHeader, bad)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), `"reason":"unknown"`) {
				t.Fatalf("pin %.20q: %d %s, want 403 unknown", bad, resp.StatusCode, body)
			}
		}
		if n := store.recs.pinGets.Load(); n != 0 {
			t.Fatalf("malformed pins read the store %d times", n)
		}
		// A well-formed token is looked up (once: then cached).
		for range 3 {
			req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
			req.Header.Set(router.PinHeader, good)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		if n := store.recs.pinGets.Load(); n != 1 {
			t.Fatalf("a well-formed unknown token read the store %d times, want 1", n)
		}
	})
}

// newUpstream starts a backend on loopback for the test and returns its
// address.
func newUpstream(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

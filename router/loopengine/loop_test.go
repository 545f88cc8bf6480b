//go:build linux

package loopengine

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/router"
)

// clientBuffered returns the most bytes any client connection of e's
// loops holds unwritten, looked at on the loops' threads.
func clientBuffered(e *Engine) int {
	most := 0
	for _, l := range loopsOf(e) {
		res := make(chan int, 1)
		l.post(func(l *loop) {
			n := 0
			for _, o := range l.fds {
				if c, ok := o.(*client); ok {
					n = max(n, len(c.out))
				}
			}
			res <- n
		})
		most = max(most, <-res)
	}
	return most
}

// loopsOf returns e's loops, once Serve started them.
func loopsOf(e *Engine) []*loop {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.loops
}

// TestBackpressureBoundsClientBuffer: a client that does not read holds
// the upstream back; the engine keeps at most maxOut and one read of the
// answer for it, not the answer.
func TestBackpressureBoundsClientBuffer(t *testing.T) {
	big := make([]byte, 16<<20)
	for i := range big {
		big[i] = byte(i*7 + i/251)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(big)))
		_, _ = w.Write(big)
	}))
	defer srv.Close()
	r, err := router.New(router.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	err = r.Update([]router.Route{{Name: "app", Match: router.Match{PathPrefix: "/"},
		Upstream: router.Upstream{Static: []string{srv.Listener.Addr().String()}}}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := New(r, Options{Loops: 1})
	served := make(chan error, 1)
	go func() { served <- e.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	testkit.EventuallyTrue(t, 10*time.Second, "loops started", func() bool { return len(loopsOf(e)) > 0 })
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_ = c.(*net.TCPConn).SetReadBuffer(16 << 10)
	if _, err := io.WriteString(c, "GET /big HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The client reads nothing for 300 ms: what the sockets do not hold
	// waits upstream.
	bound := maxOut + len(loopsOf(e)[0].buf)
	most := 0
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		most = max(most, clientBuffered(e))
	}
	if most == 0 {
		t.Fatalf("the engine never held bytes for the client: the test did not fill its sockets")
	}
	if most > bound {
		t.Errorf("the engine held %d bytes for a client that does not read; want at most %d", most, bound)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("after the wait: %d bytes, %v; want the %d sent", len(got), err, len(big))
	}
}

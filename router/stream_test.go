package router_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sluicehq/sluice/router"
)

func TestWebSocketEchoThroughProxy(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "ws", func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			for {
				typ, msg, err := c.Read(r.Context())
				if err != nil {
					return
				}
				if err := c.Write(r.Context(), typ, append([]byte("echo:"), msg...)); err != nil {
					return
				}
			}
		})
		rt := staticRoute("ws", "/ws", b.addr)
		rt.Timeout = 200 * time.Millisecond // bounds the handshake only, not the session
		p := newProxy(t, router.Config{}, []router.Route{rt})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(p.url, "http")+"/ws", &websocket.DialOptions{HTTPClient: p.client})
		if err != nil {
			t.Fatalf("dial through proxy: %v", err)
		}
		defer c.CloseNow()
		for i := 0; i < 3; i++ {
			if i == 2 {
				time.Sleep(300 * time.Millisecond) // longer than the route timeout
			}
			msg := fmt.Sprintf("hello %d", i)
			if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := c.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "echo:"+msg {
				t.Fatalf("got %q", got)
			}
		}
		_ = c.Close(websocket.StatusNormalClosure, "")
	})
}

// TestSSEIsNotBuffered reads the first event through the proxy before the
// backend is allowed to send the second.
func TestSSEIsNotBuffered(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		next := make(chan struct{})
		b := startBackend(t, "sse", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: one\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
			fmt.Fprint(w, "data: two\n\n")
		})
		p := newProxy(t, router.Config{}, []router.Route{staticRoute("sse", "/", b.addr)})
		resp, err := p.client.Get(p.url + "/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		got := make(chan string, 1)
		go func() {
			line, _ := br.ReadString('\n')
			got <- line
		}()
		select {
		case line := <-got:
			if line != "data: one\n" {
				t.Fatalf("first line %q", line)
			}
		case <-time.After(3 * time.Second):
			close(next)
			t.Fatal("first event held back by the proxy")
		}
		close(next)
		br.ReadString('\n')
		if line, _ := br.ReadString('\n'); line != "data: two\n" {
			t.Fatalf("second event %q", line)
		}
	})
}

// TestChunkedStreamIsNotBuffered does the same for a plain chunked body.
func TestChunkedStreamIsNotBuffered(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		next := make(chan struct{})
		b := startBackend(t, "chunked", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "first\n")
			w.(http.Flusher).Flush()
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
			fmt.Fprint(w, "second\n")
		})
		p := newProxy(t, router.Config{}, []router.Route{staticRoute("c", "/", b.addr)})
		resp, err := p.client.Get(p.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		got := make(chan string, 1)
		go func() { line, _ := br.ReadString('\n'); got <- line }()
		select {
		case line := <-got:
			if line != "first\n" {
				t.Fatalf("first chunk %q", line)
			}
		case <-time.After(3 * time.Second):
			close(next)
			t.Fatal("first chunk held back by the proxy")
		}
		close(next)
		if line, _ := br.ReadString('\n'); line != "second\n" {
			t.Fatalf("second chunk %q", line)
		}
	})
}

package fasthttpengine

import (
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// tunnel is an upgraded connection (WebSocket): the client's connection
// and the upstream's, copied both ways until either side closes.
type tunnel struct {
	once   sync.Once
	mu     sync.Mutex
	client net.Conn
	up     *upConn
}

func (t *tunnel) close() {
	t.once.Do(func() {
		t.mu.Lock()
		if t.client != nil {
			t.client.Close()
		}
		t.mu.Unlock()
		t.up.Close()
	})
}

// startTunnel passes the upstream's 101 answer to the client and, once
// fasthttp hands over the client's connection, copies bytes both ways on
// two goroutines of the engine's (Shutdown closes and waits for them).
// The route's timeout bounded the handshake only.
func (e *Engine) startTunnel(rq *request) {
	ctx := rq.ctx
	up := rq.conn
	rq.conn = nil
	rq.pinHeader()
	head := appendHead(nil, &ctx.Response.Header)
	ctx.HijackSetNoResponse(true)
	t := &tunnel{up: up}
	ctx.Hijack(func(client net.Conn) {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			client.Close()
			up.Close()
			return
		}
		e.tunnels[t] = struct{}{}
		e.wg.Add(1)
		e.mu.Unlock()
		defer func() {
			e.mu.Lock()
			delete(e.tunnels, t)
			e.mu.Unlock()
			e.wg.Done()
		}()
		t.mu.Lock()
		t.client = client
		t.mu.Unlock()
		_ = client.SetDeadline(time.Time{})
		if _, err := client.Write(head); err != nil {
			t.close()
			return
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = io.Copy(client, up.br) // what the upstream sent after its 101, then the rest
			t.close()
		}()
		_, _ = io.Copy(up.Conn, client)
		t.close()
		<-done
	})
	e.end(rq)
}

// appendHead appends an upstream's 101 response head as it came.
func appendHead(dst []byte, h *fasthttp.ResponseHeader) []byte {
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(h.StatusCode()), 10)
	dst = append(dst, ' ')
	if msg := h.StatusMessage(); len(msg) > 0 {
		dst = append(dst, msg...)
	} else {
		dst = append(dst, fasthttp.StatusMessage(h.StatusCode())...)
	}
	dst = append(dst, "\r\n"...)
	for k, v := range h.All() {
		dst = append(append(append(append(dst, k...), ": "...), v...), "\r\n"...)
	}
	return append(dst, "\r\n"...)
}

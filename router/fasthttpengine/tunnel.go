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
// fasthttp hands over the client's connection, copies bytes both ways.
// The route's timeout bounded the handshake only.
func (e *Engine) startTunnel(rq *request) {
	ctx := rq.ctx
	up := rq.conn
	rq.conn = nil
	rq.pinHeader()
	head := appendHead(nil, &ctx.Response.Header)
	e.takeOver(ctx, up, func(t *tunnel, client net.Conn) {
		if _, err := client.Write(head); err != nil {
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

// streamUntilClose passes an upstream answer of unknown length (chunked,
// or delimited by the upstream closing) to an HTTP/1.0 client, which
// cannot read chunked encoding: the head without Transfer-Encoding, then
// the body as it comes, delimited by closing the client's connection.
// fasthttp would chunk a body stream of unknown length, so the engine
// takes the connection over as it does for a tunnel; the upstream
// connection is closed afterwards. Trailers are dropped (HTTP/1.0 has
// none). The exchange ends when the head is ready, as a tunnel's does.
func (e *Engine) streamUntilClose(rq *request, c *upConn, cl int, keep bool) {
	ctx := rq.ctx
	rq.conn = nil
	h := &ctx.Response.Header
	h.Del(fasthttp.HeaderTransferEncoding)
	h.SetConnectionClose()
	head := appendHead(nil, h)
	b := &respBody{}
	b.start(nil, c, cl, keep)
	e.takeOver(ctx, c, func(_ *tunnel, client net.Conn) {
		if _, err := client.Write(head); err != nil {
			return
		}
		buf := getCopyBuf()
		defer putCopyBuf(buf)
		_, _ = io.CopyBuffer(struct{ io.Writer }{client}, struct{ io.Reader }{b}, buf)
	})
	e.end(rq)
}

// takeOver has fasthttp hand over the client's connection once the
// handler returned, without writing a response, and runs f on it as a
// tunnel of the engine's: Shutdown closes the client's connection and up
// and waits for f. Both are closed when f returns.
func (e *Engine) takeOver(ctx *fasthttp.RequestCtx, up *upConn, f func(t *tunnel, client net.Conn)) {
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
		f(t, client)
		t.close()
	})
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

package fasthttpengine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/router"
)

// request is one request through the engine: the router's Inbound and
// Sender for it. Pooled; used from the request's goroutine only (fasthttp
// writes the response, streamed bodies included, on the handler's
// goroutine after it returns).
type request struct {
	e       *Engine
	ctx     *fasthttp.RequestCtx
	x       *router.Exchange
	client  *connEntry // the client connection's entry
	remote  string     // RemoteAddr, made on first use
	conn    *upConn    // the connection of the last try
	stream  bool       // the request body streams from the client
	upgrade bool       // an Upgrade request (WebSocket)
	bodyErr error      // reading the client's body failed
	reqBody []byte     // a short body, read whole (wholeBody)
	head    head       // the request head and short body sent upstream
	hasBody bool       // reqBody holds the body
	vals    []string
	scratch []byte
	ipBuf   [48]byte    // the client's address, written into X-Forwarded-For
	vec     [2][]byte   // the head and a body written beside it
	bufs    net.Buffers // over vec (a field: WriteTo takes its address)
	body    respBody
}

var (
	_ router.Inbound = (*request)(nil)
	_ router.Sender  = (*request)(nil)
)

// b2s returns b as a string without copying: valid while b is.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// handle serves one request.
func (e *Engine) handle(ctx *fasthttp.RequestCtx) {
	rq := e.reqs.Get().(*request)
	rq.ctx = ctx
	if e.shutting.Load() {
		ctx.SetConnectionClose()
	}
	en := e.entry(ctx.Conn())
	rq.client = en
	// The header is in: a body is read under the deadline HeaderReceived
	// set on the socket; without one, nothing is read until the
	// connection goes idle.
	if e.bodyTimeout > 0 && hasBody(&ctx.Request.Header) {
		en.client.armed = true
	}
	e.bound(&en.client, ctx.Conn(), 0)
	x, a := e.r.Begin(rq)
	rq.x = x
	if a != nil {
		writeAnswer(ctx, a)
		e.end(rq)
		return
	}
	rq.stream = ctx.Request.IsBodyStream() && !smallBody(&ctx.Request.Header)
	rq.upgrade = isUpgrade(&ctx.Request.Header)
	status, err := x.Forward(rq)
	if err != nil {
		rq.closeConn()
		ctx.Response.Reset()
		writeAnswer(ctx, x.ErrorAnswer(err))
		rq.pinHeader()
		e.end(rq)
		return
	}
	if rq.upgrade && status == fasthttp.StatusSwitchingProtocols {
		e.startTunnel(rq)
		return
	}
	e.respond(rq, status)
}

// end ends rq's exchange and recycles rq.
// fasthttp drains (or closes the connection on) what of the client's body
// was not read.
func (e *Engine) end(rq *request) {
	e.r.End(rq.x, 0)
	rq.client.up.Store(nil)
	*rq = request{e: e, vals: rq.vals[:0], scratch: rq.scratch[:0], reqBody: rq.reqBody[:0], head: head{rq.head.b[:0]}}
	e.reqs.Put(rq)
}

// pinHeader names the pinned instance on the response.
func (rq *request) pinHeader() {
	if id := rq.x.PinnedInstance(); id != "" {
		rq.ctx.Response.Header.Set(router.InstanceHeader, id)
	}
}

// smallResponse bounds the responses read whole before they are passed
// on; longer ones stream.
const smallResponse = router.MaxRetryBodyBytes

// respond passes the upstream's response (its header already in
// ctx.Response.Header) to the client.
func (e *Engine) respond(rq *request, status int) {
	ctx, c := rq.ctx, rq.conn
	h := &ctx.Response.Header
	cl := h.ContentLength()
	keep := !h.ConnectionClose()
	stripResponseHop(h, rq)
	rq.pinHeader()
	if ctx.IsHead() || status < 200 || status == fasthttp.StatusNoContent || status == fasthttp.StatusNotModified {
		ctx.Response.SkipBody = true
		rq.release(keep)
		e.end(rq)
		return
	}
	if cl >= 0 && cl <= smallResponse {
		b := ctx.Response.SwapBody(nil)
		if cap(b) < cl {
			b = make([]byte, cl, max(cl, 4<<10))
		}
		b = b[:cl]
		_, err := io.ReadFull(c.br, b)
		ctx.Response.SwapBody(b)
		if err != nil {
			rq.closeConn()
			ctx.Response.Reset()
			writeAnswer(ctx, rq.x.ErrorAnswer(&upstreamError{"read body", err}))
			e.end(rq)
			return
		}
		rq.release(keep)
		e.end(rq)
		return
	}
	if cl < 0 && !ctx.Request.Header.IsHTTP11() {
		e.streamUntilClose(rq, c, cl, keep)
		return
	}
	rq.conn = nil
	rq.body.start(rq, c, cl, keep)
	size := cl
	if cl < 0 {
		size = -1
		ctx.Response.ImmediateHeaderFlush = true // events reach the client as they come
	}
	ctx.Response.SetBodyStream(&rq.body, size)
	// respBody.Close ends the exchange once the body is passed on.
}

// release gives the last try's connection back to the pool (keep) or
// closes it.
func (rq *request) release(keep bool) {
	if c := rq.conn; c != nil {
		rq.conn = nil
		if keep {
			rq.e.pools.put(c, rq.e.clock.Load())
		} else {
			c.Close()
		}
	}
}

func (rq *request) closeConn() { rq.release(false) }

// Inbound.

func (rq *request) Method() string { return b2s(rq.ctx.Method()) }
func (rq *request) Host() string   { return b2s(rq.ctx.Host()) }
func (rq *request) Path() string   { return b2s(rq.ctx.Path()) }
func (rq *request) Header(name string) string {
	return b2s(rq.ctx.Request.Header.Peek(name))
}
func (rq *request) HeaderValues(name string) []string {
	vs := rq.ctx.Request.Header.PeekAll(name)
	if len(vs) == 0 {
		return nil
	}
	rq.vals = rq.vals[:0]
	for _, v := range vs {
		rq.vals = append(rq.vals, b2s(v))
	}
	return rq.vals
}
func (rq *request) Cookie(name string) string {
	return b2s(rq.ctx.Request.Header.Cookie(name))
}
func (rq *request) RemoteAddr() string {
	if rq.remote == "" {
		rq.remote = rq.ctx.RemoteAddr().String()
	}
	return rq.remote
}
func (rq *request) Context() context.Context { return rq.ctx }

// Sender.

// Replayable: a body read whole (up to router.MaxRetryBodyBytes) can be
// sent again; a streamed one cannot.
func (rq *request) Replayable() (bool, error) { return !rq.stream, nil }

// Discard closes the connection of the try being retried.
func (rq *request) Discard() { rq.closeConn() }

// ClientErr reports the error reading the client's streamed body failed
// with. fasthttp does not tell when a client goes away.
func (rq *request) ClientErr() (error, bool) { return rq.bodyErr, false }

// Send sends one try to addr: on an idle pooled connection when there is
// one (again on a new connection when that one turns out closed before
// answering and the body can be sent again), else on a new one. It reads
// the response header into the client's response, skipping 1xx answers
// other than 101.
func (rq *request) Send(addr string, timeout time.Duration) (int, error) {
	rq.closeConn()
	e := rq.e
	var c *upConn
	if !rq.upgrade {
		c = e.pools.get(addr, e.clock.Load())
	}
	for {
		reused := c != nil
		if c == nil {
			var err error
			if c, err = e.pools.dialConn(rq.ctx, addr); err != nil {
				return 0, err
			}
		}
		rq.conn = c
		status, sent, err := rq.try(c, timeout)
		if err == nil {
			return status, nil
		}
		rq.closeConn()
		if reused && !sent && !rq.stream {
			c = nil // a pooled connection the upstream had closed: once more on a new one
			continue
		}
		return 0, err
	}
}

// try writes the request on c and reads the response header. sent reports
// that the upstream may have acted on it (an answer began to arrive, or a
// streamed body was read from the client).
func (rq *request) try(c *upConn, timeout time.Duration) (status int, sent bool, err error) {
	if timeout <= 0 && c.rb.armed {
		_ = c.SetReadDeadline(time.Time{}) // an earlier try's
		c.rb.armed = false
	}
	// Only reads are bounded: writes of a body already in memory do not
	// block, and a streamed body is bounded by the client's. The
	// watchdog finds c through the client's entry.
	rq.client.up.Store(c)
	rq.e.bound(&c.rb, c, timeout)
	status, sent, err = rq.exchange(c)
	if timeout <= 0 {
		return status, sent, err
	}
	rq.e.bound(&c.rb, c, 0) // the answer's header is in
	if c.rb.doomed {
		// The timeout passed as the answer came: c's next read fails.
		if err == nil && !rq.bodyBuffered(c) {
			return 0, true, os.ErrDeadlineExceeded
		}
		return status, sent, err
	}
	if err == nil && c.rb.armed && !rq.bodyBuffered(c) {
		// The timeout bounds the header only; bodies stream as long as
		// they last. (A short body already read in whole does not need
		// the deadline lifted: the next try sets its own.)
		_ = c.SetReadDeadline(time.Time{})
		c.rb.armed = false
	}
	return status, sent, err
}

// exchange writes the request on c and reads the response header, as try.
func (rq *request) exchange(c *upConn) (status int, sent bool, err error) {
	if err := rq.writeRequest(c); err != nil {
		if rq.bodyErr != nil {
			return 0, true, rq.bodyErr
		}
		return 0, rq.stream || !isClosed(err), &upstreamError{"write", err}
	}
	h := &rq.ctx.Response.Header
	for {
		if err := h.Read(c.br); err != nil {
			var te interface{ Timeout() bool }
			if errors.As(err, &te) && te.Timeout() {
				return 0, true, err
			}
			// fasthttp says io.EOF when not one byte arrived: on a pooled
			// connection, the upstream had closed it.
			return 0, err != io.EOF, &upstreamError{"read", err}
		}
		status = h.StatusCode()
		if status >= 200 || status == fasthttp.StatusSwitchingProtocols {
			return status, true, nil
		}
		h.Reset() // 100 Continue, 103 Early Hints: the answer follows
	}
}

// bodyBuffered reports whether the response's body is short and read in
// whole with its header already.
func (rq *request) bodyBuffered(c *upConn) bool {
	cl := rq.ctx.Response.Header.ContentLength()
	return !rq.upgrade && cl >= 0 && cl <= smallResponse && c.br.Buffered() >= cl
}

// isClosed reports whether a write failed because the upstream had
// closed the connection.
func isClosed(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)
}

// upstreamError is a try that broke after connecting: a reset (502, and
// retried on "reset").
type upstreamError struct {
	op  string
	err error
}

func (e *upstreamError) Error() string { return "upstream " + e.op + ": " + e.err.Error() }
func (e *upstreamError) Unwrap() error { return e.err }

// smallBody reports whether a request's body was read whole by fasthttp:
// a known length up to router.MaxRetryBodyBytes.
func smallBody(h *fasthttp.RequestHeader) bool {
	cl := h.ContentLength()
	return cl >= 0 && cl <= router.MaxRetryBodyBytes
}

// isUpgrade reports whether a request asks to switch protocols
// (WebSocket): an Upgrade header and "upgrade" in Connection.
func isUpgrade(h *fasthttp.RequestHeader) bool {
	return len(h.Peek("Upgrade")) > 0 && router.HeaderHasToken(h.Peek("Connection"), "upgrade")
}

// headWriter is where a request head is written: the connection's
// buffer, or head, a buffer of the request's own.
type headWriter interface {
	Write([]byte) (int, error)
	WriteString(string) (int, error)
	WriteByte(byte) error
}

// head is a request head being built; with a short body after it, it is
// sent in one write.
type head struct{ b []byte }

func (h *head) Write(p []byte) (int, error)       { h.b = append(h.b, p...); return len(p), nil }
func (h *head) WriteString(s string) (int, error) { h.b = append(h.b, s...); return len(s), nil }
func (h *head) WriteByte(c byte) error            { h.b = append(h.b, c); return nil }

// writeRequest writes the request line, the forwarded header and the body
// to c. A body in memory goes in the same write as the head (one
// syscall); a streamed one is copied through c's buffer as it comes.
func (rq *request) writeRequest(c *upConn) error {
	ctx, x := rq.ctx, rq.x
	h := &ctx.Request.Header
	if rq.stream {
		w := c.bw
		rq.writeHead(w, h, x.TrustedPeer())
		if cl := h.ContentLength(); cl >= 0 {
			w.WriteString("Content-Length: ")
			rq.scratch = strconv.AppendInt(rq.scratch[:0], int64(cl), 10)
			w.Write(rq.scratch)
			w.WriteString("\r\n\r\n")
			if err := rq.copyBody(w, int64(cl)); err != nil {
				return err
			}
		} else {
			w.WriteString("Transfer-Encoding: chunked\r\n\r\n")
			if err := rq.copyChunked(w); err != nil {
				return err
			}
		}
		return w.Flush()
	}
	body, err := rq.wholeBody()
	if err != nil {
		return err
	}
	w := &rq.head
	w.b = w.b[:0]
	rq.writeHead(w, h, x.TrustedPeer())
	if len(body) > 0 || methodHasBody(h.Method()) {
		w.WriteString("Content-Length: ")
		rq.scratch = strconv.AppendInt(rq.scratch[:0], int64(len(body)), 10)
		w.Write(rq.scratch)
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	if len(body) < inlineBody {
		w.Write(body)
		_, err = c.Conn.Write(w.b)
		return err
	}
	// A longer body goes beside the head, not copied behind it: one
	// writev on a TCP connection.
	rq.vec = [2][]byte{w.b, body}
	rq.bufs = rq.vec[:]
	_, err = rq.bufs.WriteTo(c.Conn)
	rq.vec = [2][]byte{}
	return err
}

// inlineBody is the size from which a body in memory is written beside
// the request head (writev) instead of copied behind it.
const inlineBody = 4 << 10

// writeHead writes the request line and the forwarded header fields.
func (rq *request) writeHead(w headWriter, h *fasthttp.RequestHeader, trusted bool) {
	w.Write(h.Method())
	w.WriteByte(' ')
	rq.writeURI(w)
	w.WriteString(" HTTP/1.1\r\n")
	rq.writeHeader(w, h, trusted)
}

// methodHasBody reports whether a request without a body still says so
// (Content-Length: 0), as net/http does for these methods.
func methodHasBody(m []byte) bool {
	switch string(m) {
	case "POST", "PUT", "PATCH":
		return true
	}
	return false
}

// writeURI writes the request target: as the client sent it, or, with the
// route's strip_prefix, without the prefix.
func (rq *request) writeURI(w headWriter) {
	uri := rq.ctx.Request.Header.RequestURI()
	n := rq.x.StripPrefix()
	if n == 0 {
		w.Write(uri)
		return
	}
	path, query := uri, []byte(nil)
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		path, query = uri[:i], uri[i:]
	}
	if len(path) >= n && string(path[:n]) == string(rq.ctx.Path()[:min(n, len(rq.ctx.Path()))]) {
		path = path[n:]
	} else {
		// The client's spelling differs from the decoded path the route
		// matched (escapes): strip the decoded one and escape it again.
		p := rq.ctx.Path()
		path = appendEscapedPath(rq.scratch[:0], p[min(n, len(p)):])
	}
	if len(path) == 0 || path[0] != '/' {
		w.WriteByte('/')
	}
	w.Write(path)
	w.Write(query)
}

// appendEscapedPath appends p with the bytes that may not appear in a
// path escaped.
func appendEscapedPath(dst, p []byte) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range p {
		if c <= ' ' || c >= 0x7f || c == '%' || c == '?' || c == '#' {
			dst = append(dst, '%', hex[c>>4], hex[c&15])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

// writeHeader writes the request's header fields but the hop-by-hop ones
// (and those Connection names) and the framing ones (Content-Length,
// Transfer-Encoding, Expect: this engine frames the body itself and has
// answered 100 Continue already), then X-Forwarded-For, -Host and -Proto
// as net/http's ReverseProxy sets them: the client-supplied values only
// from a trusted peer (which also keeps its X-Real-IP).
func (rq *request) writeHeader(w headWriter, h *fasthttp.RequestHeader, trusted bool) {
	conn := h.Peek("Connection")
	var xff, xfh, xfp []byte
	for k, v := range h.All() {
		name := b2s(k)
		switch name {
		case "Content-Length", "Transfer-Encoding", "Expect":
			continue
		case "X-Forwarded-For":
			if trusted {
				if len(xff) > 0 {
					rq.scratch = append(append(append(rq.scratch[:0], xff...), ", "...), v...)
					xff = rq.scratch
				} else {
					xff = v
				}
			}
			continue
		case "X-Forwarded-Host":
			if trusted && xfh == nil {
				xfh = v
			}
			continue
		case "X-Forwarded-Proto":
			if trusted && xfp == nil {
				xfp = v
			}
			continue
		case "X-Real-Ip":
			if !trusted {
				continue
			}
		}
		if router.IsHopHeader(name) || len(conn) > 0 && router.HeaderHasToken(conn, name) {
			continue
		}
		w.Write(k)
		w.WriteString(": ")
		w.Write(v)
		w.WriteString("\r\n")
	}
	if rq.upgrade {
		w.WriteString("Connection: Upgrade\r\nUpgrade: ")
		w.Write(h.Peek("Upgrade"))
		w.WriteString("\r\n")
	}
	w.WriteString("X-Forwarded-For: ")
	if len(xff) > 0 {
		w.Write(xff)
		w.WriteString(", ")
	}
	w.Write(rq.appendClientIP(rq.ipBuf[:0]))
	w.WriteString("\r\nX-Forwarded-Host: ")
	if xfh != nil {
		w.Write(xfh)
	} else {
		w.Write(rq.ctx.Host())
	}
	w.WriteString("\r\nX-Forwarded-Proto: ")
	switch {
	case xfp != nil:
		w.Write(xfp)
	case rq.ctx.IsTLS():
		w.WriteString("https")
	default:
		w.WriteString("http")
	}
	w.WriteString("\r\n")
}

// appendClientIP appends the peer's IP address (an IPv4-mapped one as
// IPv4), formatted once per connection.
func (rq *request) appendClientIP(dst []byte) []byte {
	en := rq.client
	if en.ip == nil {
		en.ip = rq.formatClientIP(nil)
	}
	return append(dst, en.ip...)
}

func (rq *request) formatClientIP(dst []byte) []byte {
	if ta, ok := rq.ctx.RemoteAddr().(*net.TCPAddr); ok {
		if a, ok := netip.AddrFromSlice(ta.IP); ok {
			return a.Unmap().AppendTo(dst)
		}
	}
	host, _, err := net.SplitHostPort(rq.RemoteAddr())
	if err != nil {
		host = rq.RemoteAddr()
	}
	return append(dst, host...)
}

// clientReader reads the client's streamed body, remembering why it failed.
func (rq *request) readClient(p []byte) (int, error) {
	n, err := rq.ctx.RequestBodyStream().Read(p)
	if err != nil && err != io.EOF {
		var ne net.Error
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			err = &bodyError{router.ErrBodyTimeout, err}
		} else {
			err = &bodyError{errBodyBroken, err}
		}
		if rq.bodyErr == nil {
			rq.bodyErr = err
		}
	}
	return n, err
}

var errBodyBroken = errors.New("request body broke off")

// bodyError is a failed read of the client's body: kind is
// router.ErrBodyTimeout or errBodyBroken.
type bodyError struct{ kind, err error }

func (e *bodyError) Error() string   { return e.kind.Error() + ": " + e.err.Error() }
func (e *bodyError) Unwrap() []error { return []error{e.kind, e.err} }

// wholeBody returns a short body (of known length up to
// router.MaxRetryBodyBytes), reading it from the client the first time:
// fasthttp reads the first 8 KiB of a body before calling the handler,
// the rest streams.
func (rq *request) wholeBody() ([]byte, error) {
	if rq.hasBody {
		return rq.reqBody, nil
	}
	req := &rq.ctx.Request
	if !req.IsBodyStream() {
		rq.reqBody, rq.hasBody = append(rq.reqBody[:0], req.Body()...), true
		return rq.reqBody, nil
	}
	n := max(req.Header.ContentLength(), 0)
	if cap(rq.reqBody) < n {
		rq.reqBody = make([]byte, n)
	}
	b := rq.reqBody[:n]
	for read := 0; read < n; {
		k, err := rq.readClient(b[read:])
		read += k
		if err == io.EOF && read < n {
			err = &bodyError{errBodyBroken, io.ErrUnexpectedEOF}
			rq.bodyErr = err
		}
		if err != nil && read < n {
			return nil, err
		}
	}
	rq.reqBody, rq.hasBody = b, true
	return b, nil
}

// copyBody copies n bytes of the client's streamed body to w.
func (rq *request) copyBody(w *bufio.Writer, n int64) error {
	buf := getCopyBuf()
	defer putCopyBuf(buf)
	for n > 0 {
		k, err := rq.readClient(buf[:min(int64(len(buf)), n)])
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return werr
			}
			n -= int64(k)
		}
		if err == io.EOF && n > 0 {
			err = &bodyError{errBodyBroken, io.ErrUnexpectedEOF}
			rq.bodyErr = err
		}
		if err != nil && n > 0 {
			return err
		}
	}
	return nil
}

// copyChunked copies the client's streamed body of unknown length to w in
// chunks, flushing each so that the upstream sees it as it comes.
func (rq *request) copyChunked(w *bufio.Writer) error {
	buf := getCopyBuf()
	defer putCopyBuf(buf)
	for {
		k, err := rq.readClient(buf)
		if k > 0 {
			rq.scratch = strconv.AppendInt(rq.scratch[:0], int64(k), 16)
			w.Write(rq.scratch)
			w.WriteString("\r\n")
			w.Write(buf[:k])
			w.WriteString("\r\n")
			if ferr := w.Flush(); ferr != nil {
				return ferr
			}
		}
		if err == io.EOF {
			_, werr := w.WriteString("0\r\n\r\n")
			return werr
		}
		if err != nil {
			return err
		}
	}
}

// stripResponseHop removes the hop-by-hop fields of an upstream's response
// header (and those its Connection names), keeping the trailers it
// announced. Most answers have none of them: one pass over the header
// finds that, where each Del would scan it again.
func stripResponseHop(h *fasthttp.ResponseHeader, rq *request) {
	if !hasResponseHop(h) {
		return
	}
	if conn := h.Peek("Connection"); len(conn) > 0 {
		rq.vals = rq.vals[:0]
		for part := range bytes.SplitSeq(conn, []byte{','}) {
			if p := bytes.TrimSpace(part); len(p) > 0 {
				rq.vals = append(rq.vals, b2s(p))
			}
		}
		for _, name := range rq.vals {
			h.Del(name)
		}
		h.Del("Connection")
	}
	h.ResetConnectionClose()
	for _, name := range [...]string{"Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Upgrade", "Te"} {
		h.Del(name)
	}
}

// hasResponseHop reports whether h has a field stripResponseHop removes
// (Connection among them, which fasthttp lists when the upstream closes).
func hasResponseHop(h *fasthttp.ResponseHeader) bool {
	for k := range h.All() {
		for _, name := range [...]string{"Te", "Upgrade", "Keep-Alive", "Connection", "Proxy-Connection", "Proxy-Authenticate"} {
			if len(k) == len(name) && strings.EqualFold(b2s(k), name) {
				return true
			}
		}
	}
	return false
}

// writeAnswer writes an answer of the router's.
func writeAnswer(ctx *fasthttp.RequestCtx, a *router.Answer) {
	ctx.SetStatusCode(a.Status)
	for _, f := range a.Header {
		ctx.Response.Header.Set(f.Name, f.Value)
	}
	ctx.SetBody(a.Body)
	if a.Close {
		ctx.SetConnectionClose()
	}
}

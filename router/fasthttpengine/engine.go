package fasthttpengine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluicehq/sluice/router"
)

// Options configures an Engine. The zero value is a working default.
type Options struct {
	// Logger receives the server's errors (malformed requests, broken
	// connections) at debug level. Nil discards them.
	Logger *slog.Logger
	// ReadHeaderTimeout bounds reading a request's header (slow-loris
	// clients), from the connection's start for its first request and
	// from the first byte for the next ones; 0 means 10 s. The body is
	// bounded by the router's BodyTimeout from the moment the header is
	// read (the header's bound runs on until fasthttp has read the first
	// 8 KiB of the body, whichever passes first cuts it).
	ReadHeaderTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request; 0 means 2 min.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header (431 past it); 0 means
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// TimerTick is how often the engine looks for connections past a
	// timeout; 0 means 100 ms. Timeouts of ten ticks or more (the header,
	// idle and route defaults) are kept by the engine and fire up to two
	// ticks late, without a socket timer armed per request; shorter ones
	// are set on the socket (see deadline.go).
	TimerTick time.Duration
}

// DefaultMaxHeaderBytes is Options.MaxHeaderBytes' default.
const DefaultMaxHeaderBytes = 16 << 10

// upstreamIdleFor is how long an idle upstream connection is kept.
const upstreamIdleFor = 90 * time.Second

// Engine serves a router.Router over HTTP/1.x with fasthttp. Lifecycle:
// New, Serve (any number of listeners, each in its own goroutine),
// Shutdown. Its methods are safe for concurrent use.
type Engine struct {
	r     *router.Router
	opts  Options
	log   *slog.Logger
	srv   *fasthttp.Server
	pools *pools
	reqs  sync.Pool

	mu       sync.Mutex
	started  bool
	closed   bool
	shutting atomic.Bool // closed, for the request path
	lns      map[net.Listener]struct{}
	conns    sync.Map       // net.Conn → *connEntry: the connections served
	connWG   sync.WaitGroup // the connections' goroutines
	tunnels  map[*tunnel]struct{}
	stop     chan struct{}
	wg       sync.WaitGroup // the watchdog and the tunnels

	bodyTimeout time.Duration // the router's BodyTimeout
	tick        time.Duration // Options.TimerTick
	coarseMin   time.Duration // the shortest timeout the watchdog keeps
	clock       atomic.Int64  // the watchdog's last tick (UnixNano)
}

// New returns an engine serving r. It starts nothing.
func New(r *router.Router, opts Options) *Engine {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ReadHeaderTimeout <= 0 {
		opts.ReadHeaderTimeout = 10 * time.Second
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 2 * time.Minute
	}
	if opts.MaxHeaderBytes <= 0 {
		opts.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if opts.TimerTick <= 0 {
		opts.TimerTick = 100 * time.Millisecond
	}
	e := &Engine{r: r, opts: opts, log: opts.Logger, stop: make(chan struct{}),
		lns: map[net.Listener]struct{}{}, tunnels: map[*tunnel]struct{}{},
		tick: opts.TimerTick, coarseMin: 10 * opts.TimerTick}
	e.clock.Store(time.Now().UnixNano())
	e.pools = newPools(r.DialUpstream, r.MaxIdleConnsPerHost(), upstreamIdleFor)
	e.reqs.New = func() any { return &request{e: e} }
	e.bodyTimeout = r.BodyTimeout()
	e.srv = &fasthttp.Server{
		Handler:      e.handle,
		ErrorHandler: e.serverError,
		// No ReadTimeout, IdleTimeout: the engine bounds the reads of
		// the client's connection itself (bound), and needs no request
		// time (LazyRequestTime: no clock read per request).
		LazyRequestTime:               true,
		ReadBufferSize:                opts.MaxHeaderBytes,
		WriteBufferSize:               16 << 10,
		MaxRequestBodySize:            router.MaxRetryBodyBytes, // longer bodies stream (StreamRequestBody)
		StreamRequestBody:             true,
		DisablePreParseMultipartForm:  true,
		NoDefaultServerHeader:         true,
		NoDefaultContentType:          true,
		DisableHeaderNamesNormalizing: false,
		ConnState:                     e.connState,
		Logger:                        fastLogger{e.log},
		HeaderReceived: func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
			// A body is read under a deadline set on the socket, from
			// the end of the header: fasthttp reads up to 8 KiB of it
			// before handle, which is the first place the engine finds
			// the connection's entry; handle notes it (armed).
			if e.bodyTimeout > 0 && hasBody(h) {
				return fasthttp.RequestConfig{ReadTimeout: e.bodyTimeout}
			}
			return fasthttp.RequestConfig{}
		},
	}
	return e
}

// Serve accepts connections on ln, serving each on a goroutine of its
// own, until Shutdown (then it returns nil) or until ln fails.
func (e *Engine) Serve(ln net.Listener) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		ln.Close()
		return nil
	}
	e.lns[ln] = struct{}{}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.lns, ln)
		e.mu.Unlock()
	}()
	return router.AcceptLoop(ln, e.shutting.Load, e.log, func(c net.Conn) {
		go func() { _ = e.ServeConn(c) }()
	})
}

// ServeConn serves one connection (HTTP/1.x) until it closes or
// Shutdown, then closes it. It returns nil after Shutdown.
func (e *Engine) ServeConn(c net.Conn) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		c.Close()
		return nil
	}
	if !e.started {
		e.started = true
		e.wg.Add(1)
		go e.watch()
	}
	en := &connEntry{}                               // StateNew
	e.bound(&en.client, c, e.opts.ReadHeaderTimeout) // the first request's header, from now
	e.conns.Store(c, en)
	e.connWG.Add(1)
	e.mu.Unlock()
	defer e.connWG.Done()
	err := e.srv.ServeConn(c)
	en.client.d.set(0)
	e.conns.Delete(c)
	if e.shutting.Load() {
		return nil
	}
	return err
}

// entry returns c's entry: ServeConn stores it before fasthttp serves c,
// so the store here is only for a connection fasthttp would serve by
// another way.
func (e *Engine) entry(c net.Conn) *connEntry {
	if v, ok := e.conns.Load(c); ok {
		return v.(*connEntry)
	}
	v, _ := e.conns.LoadOrStore(c, &connEntry{})
	return v.(*connEntry)
}

// connEntry is a client connection served: its state, the bounds of its
// reads and of the reads of the upstream connection its request is
// waiting on, which the watchdog enforces.
type connEntry struct {
	state  atomic.Int32 // a fasthttp.ConnState
	client readBound
	up     atomic.Pointer[upConn] // the last try's connection (its own readBound)
	// Owned by the connection's goroutine.
	ip []byte // the client's address as X-Forwarded-For writes it, made on first use
}

// connState follows the connections' states, to bound their reads (the
// header's timeout from a request's first byte, the idle timeout between
// requests) and to close idle ones on Shutdown. fasthttp calls it twice
// per request (active, idle), on the connection's goroutine: it takes no
// lock the connections share. A connection going idle after Shutdown
// began is closed here; one idle before is closed by closeConns (both
// look, after writing their side, at the other's).
func (e *Engine) connState(c net.Conn, s fasthttp.ConnState) {
	v, ok := e.conns.Load(c)
	if !ok {
		return
	}
	en := v.(*connEntry)
	switch s {
	case fasthttp.StateClosed, fasthttp.StateHijacked:
		en.client.d.set(0)
		e.conns.Delete(c)
		return
	case fasthttp.StateActive:
		// The first request's header is bounded from the connection's
		// start (ServeConn), the next ones' from their first byte.
		if fasthttp.ConnState(en.state.Load()) != fasthttp.StateNew {
			e.bound(&en.client, c, e.opts.ReadHeaderTimeout)
		}
	case fasthttp.StateIdle:
		e.bound(&en.client, c, e.opts.IdleTimeout)
	}
	en.state.Store(int32(s))
	if s == fasthttp.StateIdle && e.shutting.Load() {
		c.Close()
	}
}

// Shutdown stops accepting connections, closes idle ones and waits, until
// ctx ends, for requests in flight to finish (their responses say
// Connection: close); then it closes the remaining connections, tunnels
// (WebSocket) and idle upstream connections and waits for its
// goroutines. It returns ctx's error when ctx ended first.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.shutting.Store(true)
	for ln := range e.lns {
		ln.Close()
	}
	e.mu.Unlock()
	done := make(chan struct{})
	go func() {
		e.connWG.Wait()
		close(done)
	}()
	var err error
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
wait:
	for {
		// A new connection may be sending its first request: give it a
		// second, as net/http does (5 s there).
		e.closeConns(false, time.Since(start) > time.Second)
		select {
		case <-done:
			break wait
		case <-ctx.Done():
			err = ctx.Err()
			e.closeConns(true, true)
			<-done
			break wait
		case <-tick.C:
		}
	}
	close(e.stop)
	e.mu.Lock()
	for t := range e.tunnels {
		t.close()
	}
	e.mu.Unlock()
	e.wg.Wait()
	e.pools.close()
	return err
}

// closeConns closes the idle connections, the new ones (that have not
// sent a request yet) too with news, or all of them.
func (e *Engine) closeConns(all, news bool) {
	e.conns.Range(func(k, v any) bool {
		s := fasthttp.ConnState(v.(*connEntry).state.Load())
		if all || s == fasthttp.StateIdle || news && s == fasthttp.StateNew {
			k.(net.Conn).Close()
		}
		return true
	})
}

// Close is Shutdown without waiting for requests in flight.
func (e *Engine) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// serverError answers a request fasthttp could not read: 408 when its
// header or body did not arrive in time, 431 for a header too large, 400
// otherwise; always closing the connection.
func (e *Engine) serverError(ctx *fasthttp.RequestCtx, err error) {
	var ne net.Error
	var small *fasthttp.ErrSmallBuffer
	status, code, msg := 400, "invalid", "the request could not be read"
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		status, msg = 408, "the request did not arrive in time"
	case errors.As(err, &small):
		status, msg = 431, "the request header is too large"
	}
	writeAnswer(ctx, router.NewAnswer(status, code, msg))
	ctx.SetConnectionClose()
	e.log.Debug("request refused", "status", status, "remote", ctx.RemoteAddr().String(), "err", err)
}

// hasBody reports whether a request has a body to read: a length, or
// chunked (fasthttp says -2 for a GET without either).
func hasBody(h *fasthttp.RequestHeader) bool {
	cl := h.ContentLength()
	return cl > 0 || cl == -1
}

// fastLogger passes fasthttp's log lines to slog at debug level.
type fastLogger struct{ l *slog.Logger }

func (f fastLogger) Printf(format string, args ...any) {
	if f.l.Enabled(context.Background(), slog.LevelDebug) {
		f.l.Debug("fasthttp", "msg", fmt.Sprintf(format, args...))
	}
}

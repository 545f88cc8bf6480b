//go:build linux

package loopengine

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/fasthttpengine"
)

// Engine serves a router.Router over HTTP/1.1 on event loops, handing
// what they do not serve to a fasthttpengine.Engine it owns (see the
// package doc). Lifecycle: New, Serve (any number of listeners, each in
// its own goroutine), Shutdown. Its methods are safe for concurrent use.
type Engine struct {
	r    *router.Router
	opts Options
	log  *slog.Logger
	fast *fasthttpengine.Engine

	ctx    context.Context // ends at Shutdown: dials in progress stop
	cancel context.CancelFunc

	mu       sync.Mutex
	started  bool
	closed   bool
	lns      map[net.Listener]struct{}
	loops    []*loop
	next     atomic.Uint32
	loopsWG  sync.WaitGroup
	dials    sync.WaitGroup // dials in progress
	shutting atomic.Bool

	handedOff atomic.Int64 // connections handed to the fast engine
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
		opts.MaxHeaderBytes = fasthttpengine.DefaultMaxHeaderBytes
	}
	if opts.Loops <= 0 {
		opts.Loops = runtime.GOMAXPROCS(0)
	}
	e := &Engine{r: r, opts: opts, log: opts.Logger, lns: map[net.Listener]struct{}{}}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.fast = fasthttpengine.New(r, fasthttpengine.Options{Logger: opts.Logger, ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout: opts.IdleTimeout, MaxHeaderBytes: opts.MaxHeaderBytes, TimerTick: opts.TimerTick})
	return e
}

// start starts the loops, once.
func (e *Engine) start() error {
	if e.started {
		return nil
	}
	for range e.opts.Loops {
		l, err := newLoop(e)
		if err != nil {
			for _, l := range e.loops {
				l.post(func(l *loop) { l.stop = true })
			}
			e.loops = nil
			return err
		}
		e.loops = append(e.loops, l)
	}
	e.started = true
	for _, l := range e.loops {
		e.loopsWG.Add(1)
		go func() {
			defer e.loopsWG.Done()
			l.run()
		}()
	}
	return nil
}

// Serve accepts connections on ln and serves them on the loops, until
// Shutdown (then it returns nil) or until ln fails. A connection that is
// not a TCP socket is served by the fast engine.
func (e *Engine) Serve(ln net.Listener) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		ln.Close()
		return nil
	}
	if err := e.start(); err != nil {
		e.mu.Unlock()
		ln.Close()
		return err
	}
	e.lns[ln] = struct{}{}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.lns, ln)
		e.mu.Unlock()
	}()
	return router.AcceptLoop(ln, e.shutting.Load, e.log, e.adopt)
}

// adopt moves c to a loop: its socket is taken out of Go's poller (a
// duplicate descriptor, the original closed). A connection that cannot be
// taken goes to the fast engine.
func (e *Engine) adopt(c net.Conn) {
	fd := -1
	if sc, ok := c.(syscall.Conn); ok {
		if _, tcp := c.(*net.TCPConn); tcp {
			if raw, err := sc.SyscallConn(); err == nil {
				_ = raw.Control(func(s uintptr) { fd, _ = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
			}
		}
	}
	if fd < 0 {
		e.handedOff.Add(1)
		go func() { _ = e.fast.ServeConn(c) }()
		return
	}
	remote, _ := c.RemoteAddr().(*net.TCPAddr)
	c.Close()
	_ = unix.SetNonblock(fd, true)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	l := e.loops[e.next.Add(1)%uint32(len(e.loops))]
	l.post(func(l *loop) { l.addClient(fd, remote) })
}

// handOff serves the client connection fd with the fast engine, pre
// being what was read of it already. The loop has let go of fd.
func (e *Engine) handOff(fd int, pre []byte) {
	e.handedOff.Add(1)
	f := os.NewFile(uintptr(fd), "client")
	nc, err := net.FileConn(f)
	f.Close()
	if err != nil {
		e.log.Debug("hand-off", "err", err)
		return
	}
	go func() { _ = e.fast.ServeConn(&prefixConn{Conn: nc, pre: pre}) }()
}

// prefixConn is a connection whose first bytes were read already.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// Shutdown stops accepting connections, closes idle ones and waits, until
// ctx ends, for requests in flight to finish (their responses say
// Connection: close); then it closes the remaining connections and the
// idle upstream ones, stops the loops and shuts the fast engine down
// (with ctx). It returns ctx's error when ctx ended first.
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
	loops := e.loops
	e.mu.Unlock()
	var err error
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		busy := 0
		for _, l := range loops {
			busy += l.drain()
		}
		if busy == 0 {
			break
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-tick.C:
			continue
		}
		break
	}
	e.cancel()
	for _, l := range loops {
		l.post(func(l *loop) { l.stop = true })
	}
	e.loopsWG.Wait()
	e.dials.Wait()
	if ferr := e.fast.Shutdown(ctx); err == nil {
		err = ferr
	}
	return err
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

// Counts returns what the engine did so far.
func (e *Engine) Counts() Counts {
	e.mu.Lock()
	loops := e.loops
	e.mu.Unlock()
	c := Counts{HandedOff: e.handedOff.Load()}
	for _, l := range loops {
		c.Served += l.nserved.Load()
	}
	return c
}

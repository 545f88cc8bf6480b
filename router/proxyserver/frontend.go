package proxyserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/router/fasthttpengine"
	"github.com/sluicehq/sluice/router/loopengine"
)

// The engines that serve the proxy's listener (Options.Engine).
const (
	// EngineFast serves HTTP/1.x with router/fasthttpengine (fasthttp),
	// and hands TLS connections that negotiate HTTP/2 (ALPN h2) to a
	// net/http server running the same router.
	EngineFast = "fast"
	// EngineStd serves everything with net/http (Router.ServeHTTP on
	// httputil.ReverseProxy), HTTP/2 for TLS clients included.
	EngineStd = "std"
	// EngineLoop serves plain HTTP/1.1 with router/loopengine: event
	// loops without a goroutine per connection (Linux; elsewhere it is
	// EngineFast), handing the connections they do not serve to the fast
	// engine. Over TLS it is EngineFast. The default.
	EngineLoop = "loop"
)

// checkEngine returns an error naming the engines when name is not one
// (empty is EngineLoop).
func checkEngine(name string) error {
	switch name {
	case "", EngineFast, EngineStd, EngineLoop:
		return nil
	}
	return fmt.Errorf("proxyserver: engine %q: must be %s, %s or %s", name, EngineFast, EngineStd, EngineLoop)
}

// frontend is what serves the proxy's listener: an engine, with TLS when
// configured.
type frontend interface {
	serve(ln net.Listener) error
	shutdown(ctx context.Context) error
	// name is the engine that serves (EngineLoop asked for over TLS is
	// EngineFast).
	name() string
}

// newFrontend returns the frontend of Options.Engine, terminating TLS
// with tlsCfg when it is not nil.
func (p *Proxy) newFrontend(tlsCfg *tls.Config) (frontend, error) {
	switch p.opts.Engine {
	case EngineStd:
		return &stdFrontend{srv: p.httpServer(), tls: tlsCfg}, nil
	case EngineLoop, "":
		if tlsCfg == nil {
			eng := loopengine.New(p.router, loopengine.Options{
				Logger:            p.log,
				ReadHeaderTimeout: p.opts.ReadHeaderTimeout,
				IdleTimeout:       p.opts.IdleTimeout,
			})
			p.loop.Store(eng)
			return &loopFrontend{eng: eng}, nil
		}
		fallthrough
	case EngineFast:
		f := &fastFrontend{
			eng: fasthttpengine.New(p.router, fasthttpengine.Options{
				Logger:            p.log,
				ReadHeaderTimeout: p.opts.ReadHeaderTimeout,
				IdleTimeout:       p.opts.IdleTimeout,
			}),
			tls: tlsCfg,
			log: p.log,
		}
		if tlsCfg != nil {
			f.h2 = p.httpServer()
			f.h2ln = newConnListener()
			f.handshakes, f.stopHandshakes = context.WithCancel(context.Background())
		}
		return f, nil
	}
	return nil, checkEngine(p.opts.Engine)
}

// loopFrontend is the event-loop engine (plain HTTP).
type loopFrontend struct{ eng *loopengine.Engine }

func (f *loopFrontend) name() string                       { return EngineLoop }
func (f *loopFrontend) serve(ln net.Listener) error        { return f.eng.Serve(ln) }
func (f *loopFrontend) shutdown(ctx context.Context) error { return f.eng.Shutdown(ctx) }

// stdFrontend is net/http's server (HTTP/1.x, and HTTP/2 over TLS).
type stdFrontend struct {
	srv *http.Server
	tls *tls.Config
}

func (f *stdFrontend) serve(ln net.Listener) error {
	if f.tls != nil {
		// srv.TLSConfig stays nil so that Serve sets HTTP/2 up; the
		// listener's config offers it through ALPN.
		ln = tls.NewListener(ln, f.tls)
	}
	err := f.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (f *stdFrontend) shutdown(ctx context.Context) error { return f.srv.Shutdown(ctx) }
func (f *stdFrontend) name() string                       { return EngineStd }

// fastFrontend is the fasthttp engine; over TLS, connections that
// negotiate h2 go to a net/http server (h2) running the same router.
type fastFrontend struct {
	eng  *fasthttpengine.Engine
	tls  *tls.Config
	log  *slog.Logger
	h2   *http.Server
	h2ln *connListener
	wg   sync.WaitGroup

	mu sync.Mutex
	ln net.Listener // the TLS listener's, closed by shutdown

	stopHandshakes context.CancelFunc // ends handshakes in progress at shutdown
	handshakes     context.Context
}

func (f *fastFrontend) name() string { return EngineFast }

func (f *fastFrontend) serve(ln net.Listener) error {
	if f.tls == nil {
		return f.eng.Serve(ln)
	}
	f.mu.Lock()
	f.ln = ln
	f.mu.Unlock()
	if f.h2ln.isClosed() {
		ln.Close()
		return nil
	}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		_ = f.h2.Serve(f.h2ln)
	}()
	tln := tls.NewListener(ln, f.tls)
	for {
		c, err := tln.Accept()
		if err != nil {
			if f.h2ln.isClosed() {
				return nil
			}
			return err
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.dispatch(c.(*tls.Conn))
		}()
	}
}

// dispatch completes c's handshake (within the read-header timeout) and
// serves it with net/http when it negotiated h2, else with the engine.
func (f *fastFrontend) dispatch(c *tls.Conn) {
	ctx, cancel := context.WithTimeout(f.handshakes, f.h2.ReadHeaderTimeout)
	err := c.HandshakeContext(ctx)
	cancel()
	if err != nil {
		f.log.Debug("TLS handshake", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	if c.ConnectionState().NegotiatedProtocol == "h2" {
		if !f.h2ln.deliver(c) {
			c.Close()
		}
		return
	}
	_ = f.eng.ServeConn(c)
}

func (f *fastFrontend) shutdown(ctx context.Context) error {
	var h2err error
	if f.h2 != nil {
		f.stopHandshakes()
		f.h2ln.Close()
		f.mu.Lock()
		if f.ln != nil {
			f.ln.Close() // ends serve's accept loop; it sees h2ln closed
		}
		f.mu.Unlock()
		h2err = f.h2.Shutdown(ctx)
	}
	err := f.eng.Shutdown(ctx)
	f.wg.Wait()
	if errors.Is(h2err, http.ErrServerClosed) {
		h2err = nil
	}
	return errors.Join(err, h2err)
}

// connListener is a net.Listener fed connections by deliver.
type connListener struct {
	ch     chan net.Conn
	done   chan struct{}
	once   sync.Once
	closed bool
	mu     sync.Mutex
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.done)
	})
	return nil
}

func (l *connListener) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{} }

// certReloader serves the certificate in a pair of PEM files and loads it
// again when either file changes (looked at, at most once per interval,
// by the handshakes), so that a renewed certificate is used without a
// restart. A pair that fails to load is logged and the previous one kept.
type certReloader struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp
	checked time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// newCertReloader loads the pair once; an error names the files.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, interval: time.Second, log: log}
	if err := c.load(); err != nil {
		return nil, err
	}
	return c, nil
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// load reads the pair. Caller holds mu, or c is not shared yet.
func (c *certReloader) load() error {
	var st [2]fileStamp
	var err error
	if st[0], err = stampOf(c.certFile); err != nil {
		return fmt.Errorf("proxyserver: TLS certificate: %w", err)
	}
	if st[1], err = stampOf(c.keyFile); err != nil {
		return fmt.Errorf("proxyserver: TLS key: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("proxyserver: TLS certificate %s and key %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert, c.stamp = &cert, st
	return nil
}

// getCertificate is tls.Config.GetCertificate.
func (c *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.checked) >= c.interval {
		c.checked = now
		a, errA := stampOf(c.certFile)
		b, errB := stampOf(c.keyFile)
		if errA == nil && errB == nil && (a != c.stamp[0] || b != c.stamp[1]) {
			if err := c.load(); err != nil {
				c.log.Error("TLS certificate changed but does not load; keeping the previous one", "err", err)
				c.stamp = [2]fileStamp{a, b} // said once per change
			} else {
				c.log.Info("TLS certificate reloaded", "cert", c.certFile)
			}
		}
	}
	return c.cert, nil
}

// tlsConfig returns the listener's TLS configuration: the reloaded
// certificate, HTTP/2 and HTTP/1.1 offered through ALPN, TLS 1.2 at least.
func (c *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{
		GetCertificate: c.getCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
		MinVersion:     tls.VersionTLS12,
	}
}

// registerLoopCounts registers the loop engine's counts: the requests its
// loops served and the client connections they handed to the fast engine
// (0 until Serve runs the engine, and over TLS, where the fast engine
// serves).
func (p *Proxy) registerLoopCounts(reg prometheus.Registerer) error {
	count := func(f func(loopengine.Counts) int64) func() float64 {
		return func() float64 {
			if e := p.loop.Load(); e != nil {
				return float64(f(e.Counts()))
			}
			return 0
		}
	}
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sluice_proxy_loop_requests_total",
			Help: "Requests the loop engine's event loops served themselves (the others came on connections handed to the fast engine).",
		}, count(func(c loopengine.Counts) int64 { return c.Served })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "sluice_proxy_loop_handoffs_total",
			Help: "Client connections the loop engine handed to the fast engine: HTTP/1.0, chunked or long bodies, Expect, Upgrade, pins, escaped paths, oversized or malformed heads.",
		}, count(func(c loopengine.Counts) int64 { return c.HandedOff })),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

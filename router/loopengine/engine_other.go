//go:build !linux

package loopengine

import (
	"context"
	"net"

	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/fasthttpengine"
)

// Engine is, outside Linux, the fast engine: there is no event loop.
type Engine struct{ fast *fasthttpengine.Engine }

// New returns an engine serving r with router/fasthttpengine.
func New(r *router.Router, opts Options) *Engine {
	return &Engine{fast: fasthttpengine.New(r, fasthttpengine.Options{Logger: opts.Logger,
		ReadHeaderTimeout: opts.ReadHeaderTimeout, IdleTimeout: opts.IdleTimeout, MaxHeaderBytes: opts.MaxHeaderBytes})}
}

// Serve serves ln until Shutdown.
func (e *Engine) Serve(ln net.Listener) error { return e.fast.Serve(ln) }

// Shutdown shuts the engine down gracefully (fasthttpengine.Engine.Shutdown).
func (e *Engine) Shutdown(ctx context.Context) error { return e.fast.Shutdown(ctx) }

// Close is Shutdown without waiting for requests in flight.
func (e *Engine) Close() error { return e.fast.Close() }

// Counts is zero: without loops, every connection is the fast engine's.
func (e *Engine) Counts() Counts { return Counts{} }

package loopengine

import (
	"log/slog"
	"time"
)

// Options configures an Engine. The zero value is a working default.
type Options struct {
	// Logger receives the engine's errors at debug level. Nil discards
	// them.
	Logger *slog.Logger
	// ReadHeaderTimeout bounds reading a request's header, from the
	// connection's start for its first request and from the first byte
	// for the next ones; 0 means 10 s. A request that misses it is
	// answered 408.
	ReadHeaderTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request; 0 means 2 min.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header; 0 means
	// fasthttpengine.DefaultMaxHeaderBytes. A longer one is handed to the
	// fast engine, which answers 431.
	MaxHeaderBytes int
	// Loops is the number of event loops (threads); 0 means GOMAXPROCS.
	Loops int
	// TimerTick is the fast engine's (fasthttpengine.Options.TimerTick),
	// for the connections handed to it; 0 means its default. The loops
	// keep their own deadlines: those a second or more away are found by
	// a sweep every 100 ms (up to 100 ms late), nearer ones (backoffs,
	// short per-try timeouts) fire on time.
	TimerTick time.Duration
}

// Counts are what an engine did since New.
type Counts struct {
	// Served is the requests the loops served (answered by the router or
	// an upstream).
	Served int64
	// HandedOff is the connections handed to the fast engine.
	HandedOff int64
}

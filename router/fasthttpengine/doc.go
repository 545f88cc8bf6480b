// Package fasthttpengine serves a router.Router with github.com/valyala/fasthttp:
// the proxy's fast HTTP/1.1 data plane. The route logic (matching, limits,
// pins, subsets, balancing, breakers, retries, outlier detection, metrics,
// access log) stays in package router, reached through router.Begin,
// Exchange.Forward and router.End; this package moves the bytes.
//
// Requests are parsed by fasthttp's server and forwarded on the request's
// own goroutine over a pool of keep-alive upstream connections (no
// per-request goroutines or hand-offs). Request bodies up to
// router.MaxRetryBodyBytes are read whole (so that retries can send them
// again); longer and chunked bodies stream to the upstream. Responses up
// to the same size are copied in one piece; longer, chunked and
// close-delimited ones stream to the client, each chunk flushed as it
// arrives (server-sent events), trailers included. An HTTP/1.0 client,
// which cannot read chunked encoding, gets such a body without
// Transfer-Encoding, delimited by the proxy closing its connection (and
// without trailers). Upgrade requests
// (WebSocket) are tunnelled on a connection of their own once the upstream
// answers 101. Hop-by-hop headers are removed both ways; X-Forwarded-* are
// set as the net/http engine sets them.
//
// Timeouts (the header's, the idle connection's, a try's) of ten ticks
// or more (Options.TimerTick, 100 ms by default) are kept by the engine: a
// watchdog goroutine looks at every connection's deadline each tick and
// cuts the read of one past it, up to two ticks late and never early.
// A keep-alive request then arms no socket timer; shorter timeouts, and a
// body's, are set on the socket (deadline.go).
//
// What it cannot do: HTTP/2 (fasthttp speaks HTTP/1.x only; Upgrade: h2c
// is refused by the router anyway). For TLS clients that negotiate h2
// through ALPN, router/proxyserver hands the connection to a net/http
// server running the same router (see proxyserver.Options.Engine).
package fasthttpengine

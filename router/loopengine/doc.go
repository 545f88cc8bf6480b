// Package loopengine serves a router.Router on event loops: the proxy's
// data plane without a goroutine per connection (proxyserver.Options.Engine
// "loop", Linux only). One loop per core runs on a thread of its own,
// waiting on its own epoll for its client connections, their upstream
// connections and its pool of idle keep-alive upstream connections; a
// request is read, routed (router.Begin, Exchange.FirstTry, TryDone,
// NextTry, End), written upstream and its answer passed back without a
// goroutine switch. Measured against nginx in docs/benchmarks.md.
//
// The loops serve the plain HTTP/1.1 requests that make up most traffic:
// an origin-form path without escapes or dot segments, a body of known
// length up to router.MaxRetryBodyBytes (read whole, so that retries can
// send it again) or none, no pin. Answers pass through as they are framed
// (Content-Length, chunked with its trailers, or up to the upstream's
// close, then the client's connection closes too), hop-by-hop fields
// removed; X-Forwarded-For, -Host and -Proto are set as the other engines
// set them. A chunked answer is framed as strictly as Go's HTTP client
// reads one (CRLF line ends, no whitespace before a chunk extension,
// trailers that are header fields); one that is not closes both
// connections, so that no client finds an answer's end elsewhere than the
// loop did (FuzzChunkedFeed holds the loop to net/http's reader, as
// FuzzParseRequest holds its request parser).
//
// A connection whose request the loops do not serve (HTTP/1.0, chunked or
// longer bodies, Expect: 100-continue, Upgrade (WebSocket), pins, whose
// lookup may wait on the store, escapes, a header past MaxHeaderBytes,
// anything malformed) is handed, with what was read of it, to a
// router/fasthttpengine Engine the engine owns, which serves it from then
// on. So the loops never answer what the fast engine would answer
// otherwise: they only take the common case off it.
//
// Timeouts: the header's (from the connection's start, then from each
// request's first byte), the idle connection's, the body's
// (router.Config.BodyTimeout), a try's (the route's or the retry policy's
// per-try timeout, for the answer's head) and retry backoffs are kept by
// each loop, with no timer armed per request: a deadline a second or more
// away is found by a sweep of the loop's connections every 100 ms (up to
// 100 ms late, never early), a nearer one is also put on a heap and fires
// on time.
package loopengine

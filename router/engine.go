package router

import (
	"context"
	"net"
	"net/http"
	"time"
)

// This file is the seam between the router's logic (matching, rate limits,
// pins, subsets, balancers, breakers, retries, outlier detection, metrics
// and the access log) and the engine that moves the bytes. Router.ServeHTTP
// is the net/http engine; router/fasthttpengine is the fast one. An engine
// asks Begin for the request's route, writes the Answer the router gives
// itself or calls Forward with a Sender that sends each try, and ends with
// End.

// Inbound is an engine's view of an incoming request: what matching, rate
// limit keys, pins and subsets read. Strings it returns may point into the
// engine's buffers: the router reads them during Begin and Forward and
// copies what it keeps. Header names are given canonical
// ("X-Forwarded-For").
type Inbound interface {
	// Method is the request method ("GET").
	Method() string
	// Host is the Host header as sent (with a port, if any).
	Host() string
	// Path is the request's path, decoded, without the query.
	Path() string
	// Header returns the first value of a header, "" when absent.
	Header(name string) string
	// HeaderValues returns every value of a header (each line of a
	// repeated header), nil when absent.
	HeaderValues(name string) []string
	// Cookie returns the value of the request's cookie name, "" when absent.
	Cookie(name string) string
	// RemoteAddr is the peer's address, "host:port".
	RemoteAddr() string
	// Context ends when the request is given up (pin lookups and retry
	// backoffs stop waiting).
	Context() context.Context
}

// Sender sends the tries of a request for Exchange.Forward. It is
// implemented by an engine, per request, and used from the request's
// goroutine only.
type Sender interface {
	// Replayable readies the request body to be sent more than once and
	// reports whether it can be: false for a body too long or streamed
	// (Forward then sends it once, never retrying). An error means the body
	// could not be read: Forward ends with it.
	Replayable() (bool, error)
	// Send sends one try to addr and waits at most timeout for its
	// response header. It returns the response's status, or the error that
	// ended the try: a *net.OpError with Op "dial" when connecting failed,
	// an error with Timeout() true when the wait timed out, an error
	// matching ErrUpstreamRefused when the upstream policy refused addr.
	Send(addr string, timeout time.Duration) (status int, err error)
	// Discard drops the response of the last try, which is retried.
	Discard()
	// ClientErr reports how the client's side failed, if it did: the
	// error reading its body failed with (wrapping ErrBodyTimeout when it
	// did not arrive in time), and whether the client went away. A try
	// that failed then is not the instance's fault.
	ClientErr() (body error, gone bool)
}

// HeaderField is one header line of an Answer.
type HeaderField struct{ Name, Value string }

// Answer is a response the router gives itself, in Sluice's JSON error
// shape: 404 no route, 400 h2c, 403 bad pin, 408/400 unreadable body, 429
// rate limited, 502 upstream unreachable or refused, 503 no instance or
// every breaker open, 504 upstream timeout. Status 499 means the client
// went away: nothing is written.
type Answer struct {
	Status int
	// Header lists the header fields to set, in order (Content-Type and
	// the rest).
	Header []HeaderField
	// Body is the JSON error, ending in a newline.
	Body []byte
	// Close asks the engine to close the client's connection after the
	// answer (its body was not read to the end).
	Close bool
}

// Begin starts routing one request: it matches a route, applies the rate
// limit, resolves a pin and chooses the subset. The Exchange it returns
// must be ended with End, once, whatever happens. When the router answers
// the request itself (no route, rate limited, bad pin …) the Answer is
// non-nil: the engine writes it and calls End. Otherwise the engine calls
// Exchange.Forward. The Exchange is pooled: it must not be used after End.
func (r *Router) Begin(in Inbound) (*Exchange, *Answer) {
	st := r.statePool.Get().(*Exchange)
	*st = Exchange{r: r, in: in, start: r.now()}
	return st, r.begin(st)
}

// End ends a request begun with Begin: in-flight count, metrics, access
// log; status is the status written to the client (0 means the
// Exchange's own: the upstream's, or the Answer's). x is recycled.
func (r *Router) End(x *Exchange, status int) {
	if status != 0 {
		x.status = status
	}
	r.release(x)
}

// Forward sends the request to an upstream instance through s: the
// pinned instance, or one the balancer picks skipping open breakers,
// instances out and instances already tried, retrying on another instance
// as the route's RetryPolicy and retry budget allow. It returns the status
// of the response the engine is to pass on, or the error that ended the
// last try; the engine then writes ErrorAnswer(err).
func (x *Exchange) Forward(s Sender) (int, error) {
	x.sender = s
	return x.forward()
}

// ErrorAnswer is the answer to a request whose Forward ended with err.
func (x *Exchange) ErrorAnswer(err error) *Answer {
	a := x.r.errorAnswer(x, err)
	x.status = a.Status
	return a
}

// PinnedInstance returns the id of the instance a pin sends the request
// to, "" when it is not pinned; the engine sends it back in
// InstanceHeader.
func (x *Exchange) PinnedInstance() string {
	if x.pinned == nil {
		return ""
	}
	return x.pinned.id
}

// StripPrefix returns how many leading bytes of the request's path to
// remove before forwarding it (the route's strip_prefix), 0 for none.
func (x *Exchange) StripPrefix() int {
	if x.rt == nil {
		return 0
	}
	return x.rt.prefixLen
}

// TrustedPeer reports whether the request came from a trusted proxy
// (Config.TrustedProxies): only then are its X-Forwarded-For,
// X-Forwarded-Proto, X-Forwarded-Host and X-Real-IP passed on.
func (x *Exchange) TrustedPeer() bool {
	return len(x.r.trusted) > 0 && x.r.isTrusted(remoteHost(x.in.RemoteAddr()))
}

// DialUpstream connects to an upstream address through the router's
// dialer and upstream policy (the error matches ErrUpstreamRefused when the
// policy refuses it). Engines use it for their connection pools.
func (r *Router) DialUpstream(ctx context.Context, addr string) (net.Conn, error) {
	return r.dialer.DialContext(ctx, "tcp", addr)
}

// MaxIdleConnsPerHost is the size of an engine's idle connection pool per
// upstream address (Config.MaxIdleConnsPerHost).
func (r *Router) MaxIdleConnsPerHost() int { return r.cfg.MaxIdleConnsPerHost }

// BodyTimeout is Config.BodyTimeout with its default applied (negative: no
// bound).
func (r *Router) BodyTimeout() time.Duration { return r.cfg.BodyTimeout }

// IsHopHeader reports whether a header (canonical name) is hop-by-hop:
// never forwarded by a proxy (RFC 9110 7.6.1), besides those the
// Connection header names.
func IsHopHeader(name string) bool {
	switch name {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// stdInbound is the net/http engine's Inbound.
type stdInbound struct{ req *http.Request }

func (s *stdInbound) Method() string { return s.req.Method }
func (s *stdInbound) Host() string   { return s.req.Host }
func (s *stdInbound) Path() string   { return s.req.URL.Path }
func (s *stdInbound) Header(name string) string {
	if v := s.req.Header[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}
func (s *stdInbound) HeaderValues(name string) []string { return s.req.Header[name] }
func (s *stdInbound) Cookie(name string) string {
	if len(s.req.Header["Cookie"]) == 0 {
		return ""
	}
	if c, err := s.req.Cookie(name); err == nil {
		return c.Value
	}
	return ""
}
func (s *stdInbound) RemoteAddr() string       { return s.req.RemoteAddr }
func (s *stdInbound) Context() context.Context { return s.req.Context() }

// NewAnswer makes an answer in Sluice's JSON error shape, for an engine
// refusing a request it could not read (code "invalid" …).
func NewAnswer(status int, code, msg string) *Answer {
	return newAnswer(status, code, msg, 0, nil)
}

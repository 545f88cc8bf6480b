package router

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/configsvc/lifecycle"
)

// This file is the seam between the router's logic (matching, rate limits,
// pins, subsets, balancers, breakers, retries, outlier detection, metrics
// and the access log) and the engine that moves the bytes. Router.ServeHTTP
// is the net/http engine; router/fasthttpengine is the fast one. An engine
// asks Begin for the request's route, writes the Answer the router gives
// itself or forwards the request, and ends with End. An engine that may
// block on a try calls Forward with a Sender that sends each one; an
// engine that must not (an event loop) drives the same logic step by step:
// FirstTry, TryDone when the try ended, NextTry when TryDone asks for a
// retry.

// Inbound is an engine's view of an incoming request: what matching, rate
// limit keys, pins and subsets read. Strings it returns may point into the
// engine's buffers: the router reads them during Begin, Forward (or
// FirstTry) and End, and copies what it keeps. Header names are given canonical
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

// Try is one try of a request: the instance's address and how long to
// wait for its response header.
type Try struct {
	Addr    string
	Timeout time.Duration
}

// Forward sends the request to an upstream instance through s: the
// pinned instance, or one the balancer picks skipping open breakers,
// instances out and instances already tried, retrying on another instance
// as the route's RetryPolicy and retry budget allow. It returns the status
// of the response the engine is to pass on, or the error that ended the
// last try; the engine then writes ErrorAnswer(err). Forward blocks in
// s.Send and in the backoff before each retry (until the request's
// context ends); it drives FirstTry, TryDone and NextTry, which an engine
// that must not block calls itself instead.
func (x *Exchange) Forward(s Sender) (int, error) {
	x.sender = s
	replayable := false
	if x.pinned == nil && x.rt.retry.retriesFor(x.in.Method()) > 0 {
		ok, err := s.Replayable()
		if err != nil {
			return 0, err
		}
		replayable = ok // false: streamed or too long, it cannot be sent again
	}
	t, err := x.FirstTry(replayable)
	if err != nil {
		return 0, err
	}
	for {
		status, err := s.Send(t.Addr, t.Timeout)
		gone := err != nil && x.clientGone()
		wait, retry := x.TryDone(status, err, gone)
		if !retry {
			return status, err
		}
		if lifecycle.Sleep(x.in.Context(), wait) != nil {
			return status, err // the client gave up: the answer stands
		}
		next, ok := x.NextTry()
		if !ok {
			return status, err // no retry: the answer stands
		}
		s.Discard()
		t = next
	}
}

// FirstTry starts forwarding the request without a Sender, for engines
// that do not block on a try (an event loop): it picks the instance of the
// first try — the pinned one, or one the balancer picks skipping open
// breakers and instances out — and counts it in flight. replayable says
// whether the request's body can be sent again; retries need it (it is
// not asked of a pinned request, never retried). The engine sends the try
// and calls TryDone with how it ended. An error (a 503 when there is no
// instance or every breaker is open …) ends the exchange: the engine
// writes ErrorAnswer(err) and calls End. FirstTry is called at most once,
// after Begin returned no Answer.
func (x *Exchange) FirstTry(replayable bool) (Try, error) {
	rt := x.rt
	if x.pinned != nil {
		// Bypasses the balancer, the breaker and outlier detection.
		x.chosen, x.trying = x.pinned, true
		return Try{Addr: x.pinned.addr, Timeout: rt.timeout}, nil
	}
	if replayable {
		x.retries = rt.retry.retriesFor(x.in.Method())
	}
	in, err := x.r.choose(rt, x)
	if err != nil {
		return Try{}, err
	}
	return x.startTry(in), nil
}

// TryDone records how the try FirstTry or NextTry started ended: status is
// the response's status when err is nil; err follows Sender.Send's
// conventions (*net.OpError Op "dial" for connect failures, Timeout() for
// timeouts, ErrUpstreamRefused); gone says the client went away or failed
// to send its body (not the instance's fault; never retried, and
// ErrorAnswer then answers 499 to an engine without a Sender). It feeds the
// instance's counters, breaker and outlier detection (a pinned request's
// only its counters) and gives the try's place in the route's retry budget
// back. retry reports that the route retries the try: the engine waits
// wait (the jittered backoff), then calls NextTry. Otherwise (status, err)
// is the exchange's result: the engine passes the response on, or writes
// ErrorAnswer(err). A try the engine does not end with TryDone before End
// is ended there as if the client went away; TryDone without a try
// started returns (0, false).
func (x *Exchange) TryDone(status int, err error, gone bool) (wait time.Duration, retry bool) {
	if !x.trying {
		return 0, false
	}
	x.trying = false
	rt, in := x.rt, x.chosen
	x.tryGone, x.tryErr = gone, err
	if err == nil {
		x.status = status
	} else if errors.Is(err, ErrUpstreamRefused) {
		rt.metrics.UpstreamRefused()
	}
	in.st.count(status, err, gone)
	if x.pinned != nil {
		return 0, false // counted, never retried
	}
	failed := err != nil && !gone || err == nil && status >= 500
	if rt.outlier != nil && !gone {
		x.r.observe(rt, in.st, failed)
	}
	if rt.retry != nil {
		x.endTry()
	}
	if b := in.st.breaker; b != nil {
		o := Success
		switch {
		case gone:
			o = Ignored
		case failed:
			o = Failure
		}
		t := x.ticket
		x.ticket = Ticket{}
		b.Done(t, o)
	}
	if gone || x.retried >= x.retries || !rt.retry.wants(status, err) {
		return 0, false
	}
	x.again = true
	return rt.retry.backoff(x.retried + 1), true
}

// NextTry picks the instance of the retry TryDone asked for: it takes a
// slot of the route's retry budget and an instance not tried yet (skipping
// open breakers and instances out). When it returns false (budget used
// up, no other instance left, or no retry asked for) the last try's
// outcome stands: the engine passes on its response or writes
// ErrorAnswer(err). When true, the engine drops the last try's response,
// sends the new try and calls TryDone with how it ended.
func (x *Exchange) NextTry() (Try, bool) {
	if !x.again {
		return Try{}, false
	}
	x.again = false
	rt := x.rt
	b := &rt.shared.budget
	if !b.take(rt.retry) {
		rt.res.RetryBudgetExhausted()
		return Try{}, false
	}
	in, err := x.r.choose(rt, x)
	if err != nil {
		b.retrying.Add(-1) // the slot goes back at once
		return Try{}, false
	}
	x.retrying = true // the slot goes with the try: TryDone gives it back
	x.retried++
	t := x.startTry(in)
	rt.res.Retried()
	x.r.log.Debug("retrying on another instance", "route", rt.route.Name, "instance", in.id, "err", x.tryErr)
	return t, true
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

// IsHopHeaderFold is IsHopHeader for a name as sent, in any ASCII case
// (an engine that does not make names canonical). It allocates nothing.
func IsHopHeaderFold(name []byte) bool {
	var buf [len("Proxy-Authorization")]byte
	if len(name) > len(buf) {
		return false
	}
	upper := true
	for i, c := range name {
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		buf[i], upper = c, c == '-'
	}
	return IsHopHeader(string(buf[:len(name)]))
}

// HeaderHasToken reports whether the comma-separated header value v
// (Connection, Upgrade …) holds token, ignoring ASCII case and the spaces
// and tabs around each element.
func HeaderHasToken(v []byte, token string) bool {
	for len(v) > 0 {
		part := v
		if i := bytes.IndexByte(v, ','); i >= 0 {
			part, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		part = bytes.Trim(part, " \t")
		if len(part) != len(token) {
			continue
		}
		same := true
		for i := range len(part) {
			if lowerASCII(part[i]) != lowerASCII(token[i]) {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
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

// AcceptLoop accepts connections on ln and hands each to serve (on the
// accepting goroutine: serve must not block), until ln fails: then it
// returns nil when closing reports that the engine is shutting down (its
// Shutdown closed ln), else the error. A timeout or a process out of file
// descriptors (EMFILE, ENFILE) is logged at warn level and retried after a
// backoff doubling from 5 ms to 1 s, as net/http does.
func AcceptLoop(ln net.Listener, closing func() bool, log *slog.Logger, serve func(net.Conn)) error {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if closing() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				log.Warn("accept", "err", err, "retry", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		serve(c)
	}
}

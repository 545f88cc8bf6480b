package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// reqState follows one request through ServeHTTP, Rewrite, the transport
// and the error handler. Pooled.
type reqState struct {
	rt       *routeRT
	pool     *pool // the instances to balance over: the route's or a subset's
	pinned   *inst
	pinID    string
	chosen   *inst
	tried    [MaxRetries + 1]*inst
	ntried   int
	status   int
	inflight bool
	body     *deadlineBody // the request body under BodyTimeout, if any

	retrying  bool   // the try being sent is a retry: it holds a retry budget slot
	replay    []byte // the body, kept to be sent again
	cancelTry func() // ends the context of the try whose response is used
}

type stateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

// ServeHTTP routes one request. Answers the proxy gives itself are JSON in
// Sluice's error shape: 404 no route, 400 h2c upgrade, 403 bad pin, 429 rate
// limited, 502 upstream unreachable, 503 no instance (none registered, none
// in the chosen subset, every one ejected or failing health checks) or all
// breakers open, 504 upstream timeout.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := r.now()
	snap := r.snap.Load()
	if isH2CUpgrade(req) {
		writeError(w, http.StatusBadRequest, "invalid", "Upgrade: h2c is not supported through the proxy", 0, nil)
		r.finish(req, snap.none, snap.noneUp, "", "", "", http.StatusBadRequest, start)
		return
	}
	e := snap.table.match(req)
	if e == nil {
		writeError(w, http.StatusNotFound, "not_found", "no route matches "+req.Method+" "+req.Host+req.URL.Path, 0, nil)
		r.finish(req, snap.none, snap.noneUp, "", "", "", http.StatusNotFound, start)
		return
	}
	rt := snap.routes[e.idx]
	if rt.limiter != nil && !r.allow(w, req, rt, start) {
		return
	}
	var pin pinTarget
	if token := pinToken(req); token != "" {
		var ok bool
		if pin, ok = r.resolvePinTarget(w, req, rt, token, start); !ok {
			return
		}
	}

	p := &rt.pool
	if rt.subsets != nil && pin.inst == nil {
		var ok bool
		if p, ok = r.subsetPool(w, req, rt, pin.id, start); !ok {
			return
		}
	}

	st := r.statePool.Get().(*reqState)
	*st = reqState{rt: rt, pool: p, pinned: pin.inst, pinID: pin.id}
	defer r.release(req, st, start)
	ctx := context.WithValue(req.Context(), stateKey{}, st)
	out := req.WithContext(ctx)
	if r.cfg.BodyTimeout > 0 && req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0 {
		// The deadline is on the socket's clock, not Config.Now.
		if b := newDeadlineBody(w, req.Body, time.Now().Add(r.cfg.BodyTimeout)); b != nil {
			st.body, out.Body = b, b
		}
	}
	r.proxy.ServeHTTP(w, out)
}

// allow takes a token of rt's rate limit for req. When there is none it
// answers 429 with Retry-After and the RateLimit headers and returns false.
func (r *Router) allow(w http.ResponseWriter, req *http.Request, rt *routeRT, start time.Time) bool {
	d := rt.limiter.Allow(r.limitKey(rt, req), start)
	if d.OK {
		return true
	}
	name := rt.route.Name
	secs := retryAfterSeconds(d.RetryAfter)
	h := w.Header()
	h["Retry-After"] = []string{strconv.FormatInt(secs, 10)}
	h["Ratelimit-Policy"] = []string{rt.policy}
	h["Ratelimit"] = []string{strconv.Quote(name) + ";r=" + strconv.Itoa(d.Remaining) + ";t=" + strconv.FormatInt(secs, 10)}
	writeError(w, http.StatusTooManyRequests, "rate_limited", "rate limit of route "+name+" exceeded", 0, nil)
	rt.metrics.RateLimited()
	rt.lim.rejected.Add(1)
	r.finish(req, rt.metrics, rt.self, name, "", "", http.StatusTooManyRequests, start)
	return false
}

// pinTarget is where a pin sends a request: the pin's id, and the pinned
// instance of the route's service (nil when the pin names none of it).
type pinTarget struct {
	id   string
	inst *inst
}

// resolvePinTarget resolves pin token for a request on rt. An unknown,
// expired or revoked pin is answered 403 with the reason, a failed lookup
// or a pinned instance the route does not have 503; then ok is false.
func (r *Router) resolvePinTarget(w http.ResponseWriter, req *http.Request, rt *routeRT, token string, start time.Time) (pt pinTarget, ok bool) {
	name := rt.route.Name
	pin, err := r.resolvePin(req.Context(), token)
	if err != nil {
		reason := pinReason(err)
		status := http.StatusForbidden
		if reason == "" {
			status = http.StatusServiceUnavailable
			r.log.Warn("pin lookup", "route", name, "err", err)
			writeError(w, status, "unavailable", "pin lookup failed", 1, nil)
		} else {
			writeError(w, status, "forbidden", err.Error(), 0, map[string]string{"reason": reason})
		}
		r.finish(req, rt.metrics, rt.self, name, "", "", status, start)
		return pt, false
	}
	pt.id = pin.ID
	svc := rt.route.Upstream.Service
	if svc == "" {
		return pt, true
	}
	id, ok := pin.Targets[svc]
	if !ok {
		return pt, true
	}
	if pt.inst = rt.byID[id]; pt.inst == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "pinned instance "+id+" of service "+svc+" is not registered", 0, nil)
		r.finish(req, rt.metrics, rt.self, name, "", pt.id, http.StatusServiceUnavailable, start)
		return pt, false
	}
	w.Header()[InstanceHeader] = []string{pt.inst.id}
	return pt, true
}

// subsetPool chooses the subset of rt a request goes to (forced, sticky or
// by weight). When the forced subset or every subset has no instance it
// answers 503 and returns false.
func (r *Router) subsetPool(w http.ResponseWriter, req *http.Request, rt *routeRT, pinID string, start time.Time) (*pool, bool) {
	p, forced := r.choosePool(rt.subsets, req)
	if p != nil {
		return p, true
	}
	name := rt.route.Name
	msg := "no instance of service " + rt.route.Upstream.Service + " is in a subset of route " + name
	if forced != "" {
		msg = "subset " + forced + " of route " + name + " has no instance"
	}
	writeError(w, http.StatusServiceUnavailable, "unavailable", msg, 1, nil)
	r.finish(req, rt.metrics, rt.self, name, "", pinID, http.StatusServiceUnavailable, start)
	return nil, false
}

// release ends a proxied request: in-flight count, metrics, access log.
// Deferred, so it runs even when ReverseProxy aborts a broken stream.
func (r *Router) release(req *http.Request, st *reqState, start time.Time) {
	rt := st.rt
	up, id := rt.self, ""
	if st.chosen != nil {
		up, id = st.chosen.m, st.chosen.id
		if st.inflight {
			st.chosen.st.inflight.Add(-1)
		}
	}
	if st.cancelTry != nil {
		st.cancelTry()
	}
	status := st.status
	if status == 0 {
		status = http.StatusBadGateway
	}
	r.finish(req, rt.metrics, up, rt.route.Name, id, st.pinID, status, start)
	*st = reqState{}
	r.statePool.Put(st)
}

// finish records one request in the metrics and the access log.
func (r *Router) finish(req *http.Request, m RouteMetrics, up UpstreamMetrics, route, instance, pinID string, status int, start time.Time) {
	d := r.now().Sub(start)
	m.Observe(d)
	up.Response(status)
	if r.access == nil {
		return
	}
	r.access.LogAttrs(req.Context(), slog.LevelInfo, "request",
		slog.String("route", route),
		slog.String("instance", instance),
		slog.String("pin", pinID),
		slog.String("method", req.Method),
		slog.String("path", req.URL.Path),
		slog.Int("status", status),
		slog.Duration("duration", d),
		slog.String("remote", req.RemoteAddr),
	)
}

func (r *Router) resolvePin(ctx context.Context, token string) (configsvc.Pin, error) {
	if r.cfg.Pins == nil {
		return configsvc.Pin{}, configsvc.ErrPinUnknown
	}
	pin, err := r.cfg.Pins.ResolvePin(ctx, token)
	if err != nil {
		return configsvc.Pin{}, err
	}
	if err := pin.Check(r.now()); err != nil {
		return configsvc.Pin{}, err
	}
	return pin, nil
}

func pinReason(err error) string {
	switch {
	case errors.Is(err, configsvc.ErrPinUnknown):
		return "unknown"
	case errors.Is(err, configsvc.ErrPinExpired):
		return "expired"
	case errors.Is(err, configsvc.ErrPinRevoked):
		return "revoked"
	}
	return ""
}

func pinToken(req *http.Request) string {
	if v := req.Header[PinHeader]; len(v) > 0 && v[0] != "" {
		return v[0]
	}
	if len(req.Header["Cookie"]) == 0 {
		return ""
	}
	if c, err := req.Cookie(PinCookie); err == nil {
		return c.Value
	}
	return ""
}

func isH2CUpgrade(req *http.Request) bool {
	for _, v := range req.Header["Upgrade"] {
		for _, p := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "h2c") {
				return true
			}
		}
	}
	return false
}

// limitKey returns the rate-limit bucket key of a request. Header values
// are taken as they come (the limiter bounds their length); client
// addresses are keyed per address for IPv4 and per /64 for IPv6, the
// smallest block a client is commonly given, so that one client cannot take
// a fresh bucket per address.
func (r *Router) limitKey(rt *routeRT, req *http.Request) string {
	switch rt.keyKind {
	case "ip":
		return ipKey(r.clientIP(req))
	case "header":
		if v := req.Header[rt.keyHeader]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	return ""
}

// clientIP is the peer's address, or, when the peer is a trusted proxy, the
// right-most address of X-Forwarded-For that is not a trusted proxy.
func (r *Router) clientIP(req *http.Request) string {
	host := remoteHost(req.RemoteAddr)
	if len(r.trusted) == 0 || !r.isTrusted(host) {
		return host
	}
	xff := req.Header["X-Forwarded-For"]
	for i := len(xff) - 1; i >= 0; i-- {
		parts := strings.Split(xff[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a := strings.TrimSpace(parts[j])
			if a == "" {
				continue
			}
			if !r.isTrusted(a) {
				return a
			}
		}
	}
	return host
}

func (r *Router) isTrusted(host string) bool {
	if len(r.trusted) == 0 {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range r.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ipKey returns the rate-limit key of a client address: an IPv4 address
// (also when IPv4-mapped) as it is, an IPv6 address as its /64.
func ipKey(host string) string {
	if strings.IndexByte(host, ':') < 0 {
		return host
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if ip = ip.Unmap(); ip.Is4() {
		return ip.String()
	}
	p, _ := ip.WithZone("").Prefix(64)
	return p.String()
}

func remoteHost(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// rewrite builds the outbound request. The upstream host is set by the
// transport, which picks the instance (and retries on another).
func (r *Router) rewrite(pr *httputil.ProxyRequest) {
	st := stateFrom(pr.In.Context())
	out := pr.Out
	out.URL.Scheme = "http"
	out.URL.Host = ""
	out.Host = pr.In.Host
	if st != nil && st.rt.prefixLen > 0 {
		p := out.URL.Path[min(st.rt.prefixLen, len(out.URL.Path)):]
		if p == "" || p[0] != '/' {
			p = "/" + p
		}
		out.URL.Path = p
		out.URL.RawPath = ""
	}
	trusted := len(r.trusted) > 0 && r.isTrusted(remoteHost(pr.In.RemoteAddr))
	if !trusted {
		// Upstreams may read it as the client's address: only a trusted
		// proxy may say so.
		delete(out.Header, "X-Real-Ip")
	}
	if trusted {
		if v := pr.In.Header["X-Forwarded-For"]; len(v) > 0 {
			out.Header["X-Forwarded-For"] = v
		}
	}
	pr.SetXForwarded()
	if trusted {
		if v := pr.In.Header["X-Forwarded-Proto"]; len(v) > 0 {
			out.Header["X-Forwarded-Proto"] = v
		}
		if v := pr.In.Header["X-Forwarded-Host"]; len(v) > 0 {
			out.Header["X-Forwarded-Host"] = v
		}
	}
}

// proxyErr is an answer the transport asks the error handler to give.
type proxyErr struct {
	status     int
	code       string
	msg        string
	retryAfter int64
}

func (e *proxyErr) Error() string { return e.msg }

var errNoInstance = errors.New("no upstream instance")

type roundTripper struct{ r *Router }

// RoundTrip picks an instance (pinned, or by balancer skipping open
// breakers, instances out and instances already tried), sends the
// request, reports the outcome to the breaker and outlier detection, and
// retries on another instance as the route's RetryPolicy and retry budget
// allow.
func (t roundTripper) RoundTrip(out *http.Request) (*http.Response, error) {
	st := stateFrom(out.Context())
	if st == nil {
		return nil, errors.New("router: request without route state")
	}
	if st.pinned != nil {
		return t.roundTripPinned(st, out)
	}
	rt := st.rt
	retries, err := retriesOf(st, out)
	if err != nil {
		return nil, err
	}
	in, done, err := t.r.pick(rt, st)
	if err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		resp, gone, err := t.attempt(st, out, in, done)
		if gone || try >= retries || !rt.retry.wants(resp, err) {
			return resp, err
		}
		next, ndone, ok := t.nextTry(st, out, try+1)
		if !ok {
			return resp, err // no retry: the answer stands
		}
		abandon(st, in, resp)
		in, done = next, ndone
		rt.res.Retried()
		t.r.log.Debug("retrying on another instance", "route", rt.route.Name, "instance", next.id, "err", err)
	}
}

// retriesOf returns how many retries the request may get: its route's
// retries for its method, 0 when its body is too long or streamed to be
// sent again. A body that may be sent again is kept (bufferBody); one that
// cannot be read ends the request with the error.
func retriesOf(st *reqState, out *http.Request) (int, error) {
	retries := st.rt.retry.retriesFor(out)
	if retries == 0 || out.Body == nil || out.Body == http.NoBody {
		return retries, nil
	}
	ok, err := bufferBody(out, st)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, nil // streamed: it cannot be sent again
	}
	return retries, nil
}

// nextTry readies retry n (1, 2 …): it waits the backoff, takes a slot of
// the route's retry budget and picks another instance. ok is false when
// the client went away, the budget is used up or no other instance is
// left; the slot is then given back.
func (t roundTripper) nextTry(st *reqState, out *http.Request, n int) (in *inst, done func(Outcome), ok bool) {
	rt := st.rt
	if rt.retry.backoff(out.Context(), n) != nil {
		return nil, nil, false
	}
	if !rt.shared.budget.take(rt.retry) {
		rt.res.RetryBudgetExhausted()
		return nil, nil, false
	}
	in, done, err := t.r.pick(rt, st)
	if err != nil {
		rt.shared.budget.retrying.Add(-1)
		return nil, nil, false
	}
	st.retrying = true
	return in, done, true
}

// abandon lets go of a try that is retried: its response (nil after an
// error), its per-try context and its in-flight count on in.
func abandon(st *reqState, in *inst, resp *http.Response) {
	if resp != nil {
		discard(resp)
	}
	if st.cancelTry != nil {
		st.cancelTry()
		st.cancelTry = nil
	}
	in.st.inflight.Add(-1)
	st.inflight = false
}

// roundTripPinned sends the request to the pinned instance, bypassing the
// balancer, its breaker and outlier detection; it is counted but never
// retried.
func (t roundTripper) roundTripPinned(st *reqState, out *http.Request) (*http.Response, error) {
	rt := st.rt
	st.chosen = st.pinned
	out.URL.Host = st.pinned.addr
	resp, err := rt.transport.RoundTrip(out)
	if err == nil {
		st.status = resp.StatusCode
	} else if errors.Is(err, ErrUpstreamRefused) {
		rt.metrics.UpstreamRefused()
	}
	st.pinned.st.count(resp, err, out, st.clientFault())
	return resp, err
}

// attempt sends one try of out to in (with the body kept for retries and
// the per-try timeout, if any), counts it and reports its outcome to in's
// breaker (done, nil without one) and the route's outlier detection. gone
// reports that the client went away or failed to send its body: nothing
// to retry.
func (t roundTripper) attempt(st *reqState, out *http.Request, in *inst, done func(Outcome)) (resp *http.Response, gone bool, err error) {
	rt := st.rt
	st.chosen, st.inflight = in, true
	st.tried[st.ntried] = in
	st.ntried++
	in.st.inflight.Add(1)
	out.URL.Host = in.addr
	if st.replay != nil {
		out.Body = io.NopCloser(bytes.NewReader(st.replay))
	}
	if rt.retry != nil {
		rt.shared.budget.active.Add(1)
		defer st.endTry()
	}
	resp, err = sendOnce(rt, st, out)
	clientFault := err != nil && st.clientFault()
	in.st.count(resp, err, out, clientFault)
	gone = err != nil && (clientFault || out.Context().Err() != nil)
	failed := err != nil && !gone || err == nil && resp.StatusCode >= 500
	if err == nil {
		st.status = resp.StatusCode
	} else if errors.Is(err, ErrUpstreamRefused) {
		rt.metrics.UpstreamRefused()
	}
	if done != nil {
		switch {
		case gone:
			done(Ignored)
		case failed:
			done(Failure)
		default:
			done(Success)
		}
	}
	if rt.outlier != nil && !gone {
		t.r.observe(rt, in.st, failed)
	}
	return resp, gone, err
}

// endTry ends a try in the route's retry budget: it is no longer active,
// and the retry slot it held, if any, is given back.
func (st *reqState) endTry() {
	b := &st.rt.shared.budget
	b.active.Add(-1)
	if st.retrying {
		b.retrying.Add(-1)
		st.retrying = false
	}
}

// count adds one request to the instance's counters; a failure is what a
// breaker counts as one (connection error, timeout, 5xx), not a client
// that went away or failed to send its body (clientFault).
func (s *instState) count(resp *http.Response, err error, out *http.Request, clientFault bool) {
	s.requests.Add(1)
	if (err != nil && !clientFault && out.Context().Err() == nil) || (err == nil && resp.StatusCode >= 500) {
		s.failures.Add(1)
	}
}

// clientFault reports whether the request failed because reading the
// client's body failed (it timed out or broke off): not the instance's fault.
func (st *reqState) clientFault() bool {
	return st.body != nil && st.body.failed() != nil
}

func isConnectError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// pick chooses an instance for a request from its pool. It returns a
// *proxyErr 503 when there is none, when every candidate's breaker is
// open, or when every candidate is out (ejected, failing health checks)
// and the route is not in panic mode; errNoInstance when every candidate
// left was tried already.
func (r *Router) pick(rt *routeRT, st *reqState) (*inst, func(Outcome), error) {
	p := st.pool
	n := len(p.insts)
	if n == 0 {
		return nil, nil, &proxyErr{status: http.StatusServiceUnavailable, code: "unavailable", msg: "no registered instance of " + p.what, retryAfter: 1}
	}
	skipOut := rt.health && !rt.shared.panic.Load()
	start := 0
	switch rt.route.Upstream.EffectiveBalancer() {
	case BalancerRoundRobin:
		start = int(p.rr.Add(1) % uint64(n))
	case BalancerLeastRequests:
		if n > 1 {
			a, b := p.twoChoices()
			for _, i := range [2]int{a, b} {
				if in, done, ok := tryInst(p.insts[i], st, skipOut); ok {
					return in, done, nil
				}
			}
			start = a
		}
	case BalancerWeighted:
		start = p.weightedChoice()
	}
	for i := 0; i < n; i++ {
		if in, done, ok := tryInst(p.insts[(start+i)%n], st, skipOut); ok {
			return in, done, nil
		}
	}
	if st.ntried > 0 {
		return nil, nil, errNoInstance
	}
	return nil, nil, r.allRefused(rt, p, skipOut)
}

// twoChoices picks two different instances of p at random (of at least
// two), the one with fewer requests in flight first.
func (p *pool) twoChoices() (a, b int) {
	n := len(p.insts)
	a = rand.IntN(n)
	b = rand.IntN(n - 1)
	if b >= a {
		b++
	}
	if p.insts[b].st.inflight.Load() < p.insts[a].st.inflight.Load() {
		a, b = b, a
	}
	return a, b
}

// weightedChoice picks an instance of p at random in proportion to its
// weight; 0 when every weight is 0.
func (p *pool) weightedChoice() int {
	total := p.cum[len(p.cum)-1]
	if total <= 0 {
		return 0
	}
	return searchCum(p.cum, rand.IntN(total))
}

// allRefused is the answer when every instance of p refused: 503 naming
// why. When every one is out (skipOut: ejected or failing health checks)
// it says so; else their breakers are open, and it says to retry when the
// first one half-opens.
func (r *Router) allRefused(rt *routeRT, p *pool, skipOut bool) error {
	wait, open := rt.openFor, false
	now := r.now().UnixNano()
	for _, in := range p.insts {
		if skipOut && in.st.flags.Load() != 0 {
			continue
		}
		open = true
		if at := in.st.openedAt.Load(); at > 0 {
			if left := time.Duration(at + int64(rt.openFor) - now); left < wait {
				wait = left
			}
		}
	}
	if !open {
		return &proxyErr{status: http.StatusServiceUnavailable, code: "unavailable", msg: "no healthy instance of " + p.what + ": every one is ejected or failing its health checks", retryAfter: 1}
	}
	return &proxyErr{status: http.StatusServiceUnavailable, code: "unavailable", msg: "every instance of route " + rt.route.Name + " has an open circuit breaker", retryAfter: retryAfterSeconds(wait)}
}

// retryAfterSeconds rounds d up to whole seconds for a Retry-After header,
// at least 1.
func retryAfterSeconds(d time.Duration) int64 {
	return max(1, int64((d+time.Second-1)/time.Second))
}

// tryInst admits in unless it was tried already, it is out (skipOut:
// ejected or failing health checks) or its breaker refuses.
func tryInst(in *inst, st *reqState, skipOut bool) (*inst, func(Outcome), bool) {
	for i := 0; i < st.ntried; i++ {
		if st.tried[i] == in {
			return nil, nil, false
		}
	}
	if skipOut && in.st.flags.Load() != 0 {
		return nil, nil, false
	}
	if b := in.st.breaker; b != nil {
		done, err := b.Allow() // refuses while open: no separate State check (one lock less)
		if err != nil {
			return nil, nil, false
		}
		return in, done, true
	}
	return in, nil, true
}

// proxyError answers a request the transport could not complete.
func (r *Router) proxyError(w http.ResponseWriter, req *http.Request, err error) {
	st := stateFrom(req.Context())
	var pe *proxyErr
	var te interface{ Timeout() bool }
	status := http.StatusBadGateway
	var refused *UpstreamRefusedError
	var bodyErr error
	if st != nil && st.body != nil {
		bodyErr = st.body.failed()
	}
	switch {
	case errors.As(err, &pe):
		status = pe.status
		writeError(w, pe.status, pe.code, pe.msg, pe.retryAfter, nil)
	case bodyErr != nil && errors.Is(bodyErr, errBodyTimeout):
		// Checked before the context: net/http cancels it on the failed read.
		status = http.StatusRequestTimeout
		w.Header()["Connection"] = []string{"close"}
		writeError(w, status, "invalid", "the request body did not arrive within "+r.cfg.BodyTimeout.String(), 0, nil)
	case req.Context().Err() != nil:
		status = 499 // client closed the request: nobody to answer
	case bodyErr != nil:
		status = http.StatusBadRequest
		w.Header()["Connection"] = []string{"close"}
		writeError(w, status, "invalid", "the request body could not be read", 0, nil)
	case errors.As(err, &refused):
		msg := "upstream refused by the proxy's upstream policy: " + refused.Reason
		if st != nil && st.chosen != nil {
			msg = "upstream instance " + st.chosen.id + " (" + refused.Addr.String() + ") refused by the proxy's upstream policy: " + refused.Reason
		}
		w.Header()[UpstreamRefusedHeader] = []string{refused.Reason}
		writeError(w, status, "upstream_refused", msg, 0, map[string]string{"reason": refused.Reason})
	case errors.As(err, &te) && te.Timeout() && !isConnectError(err):
		status = http.StatusGatewayTimeout
		writeError(w, status, "unavailable", "upstream did not answer in time", 0, nil)
	default:
		msg := "upstream unreachable"
		if st != nil && st.chosen != nil {
			msg = "upstream instance " + st.chosen.id + " unreachable"
		}
		writeError(w, status, "unavailable", msg, 0, nil)
	}
	if st != nil {
		st.status = status
		if status != 499 {
			r.log.Debug("proxy error", "route", st.rt.route.Name, "status", status, "err", err)
		}
	}
}

// writeError writes Sluice's JSON error shape; details may be nil.
func writeError(w http.ResponseWriter, status int, code, msg string, retryAfter int64, details map[string]string) {
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Cache-Control"] = []string{"no-store"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	if retryAfter > 0 {
		h["Retry-After"] = []string{strconv.FormatInt(retryAfter, 10)}
	}
	body := errorBody{}
	body.Error.Code, body.Error.Message, body.Error.Details = code, msg, details
	b, _ := json.Marshal(body)
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

type errorBody struct {
	Error struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Details map[string]string `json:"details,omitempty"`
	} `json:"error"`
}

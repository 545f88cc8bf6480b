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
// limited, 502 upstream unreachable, 503 no instance or all breakers open,
// 504 upstream timeout.
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
	name := rt.route.Name

	if rt.limiter != nil {
		d := rt.limiter.Allow(r.limitKey(rt, req), start)
		if !d.OK {
			secs := int64((d.RetryAfter + time.Second - 1) / time.Second)
			if secs < 1 {
				secs = 1
			}
			h := w.Header()
			h["Retry-After"] = []string{strconv.FormatInt(secs, 10)}
			h["Ratelimit-Policy"] = []string{rt.policy}
			h["Ratelimit"] = []string{strconv.Quote(name) + ";r=" + strconv.Itoa(d.Remaining) + ";t=" + strconv.FormatInt(secs, 10)}
			writeError(w, http.StatusTooManyRequests, "rate_limited", "rate limit of route "+name+" exceeded", 0, nil)
			rt.metrics.RateLimited()
			rt.lim.rejected.Add(1)
			r.finish(req, rt.metrics, rt.self, name, "", "", http.StatusTooManyRequests, start)
			return
		}
	}

	var pinned *inst
	var pinID string
	if token := pinToken(req); token != "" {
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
			return
		}
		pinID = pin.ID
		if svc := rt.route.Upstream.Service; svc != "" {
			if id, ok := pin.Targets[svc]; ok {
				pinned = rt.byID[id]
				if pinned == nil {
					writeError(w, http.StatusServiceUnavailable, "unavailable", "pinned instance "+id+" of service "+svc+" is not registered", 0, nil)
					r.finish(req, rt.metrics, rt.self, name, "", pinID, http.StatusServiceUnavailable, start)
					return
				}
				w.Header()[InstanceHeader] = []string{pinned.id}
			}
		}
	}

	st := r.statePool.Get().(*reqState)
	*st = reqState{rt: rt, pool: &rt.pool, pinned: pinned, pinID: pinID}
	if rt.subsets != nil && pinned == nil {
		p, forced := r.choosePool(rt.subsets, req)
		if p == nil {
			msg := "no instance of service " + rt.route.Upstream.Service + " is in a subset of route " + name
			if forced != "" {
				msg = "subset " + forced + " of route " + name + " has no instance"
			}
			writeError(w, http.StatusServiceUnavailable, "unavailable", msg, 1, nil)
			r.finish(req, rt.metrics, rt.self, name, "", pinID, http.StatusServiceUnavailable, start)
			*st = reqState{}
			r.statePool.Put(st)
			return
		}
		st.pool = p
	}
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
	rt := st.rt
	if st.pinned != nil {
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
	retries := rt.retry.retriesFor(out)
	if retries > 0 && out.Body != nil && out.Body != http.NoBody {
		ok, err := bufferBody(out, st)
		if err != nil {
			return nil, err
		}
		if !ok {
			retries = 0 // streamed: it cannot be sent again
		}
	}
	in, done, err := t.r.pick(rt, st)
	if err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		resp, err, gone := t.try(rt, st, in, done, out)
		if gone || try >= retries || !rt.retry.wants(resp, err) {
			return resp, err
		}
		if rt.retry.backoff(out.Context(), try+1) != nil {
			return resp, err
		}
		if !rt.shared.budget.take(rt.retry) {
			rt.res.RetryBudgetExhausted()
			return resp, err
		}
		next, ndone, perr := t.r.pick(rt, st)
		if perr != nil {
			rt.shared.budget.retrying.Add(-1)
			return resp, err // no other instance: the answer stands
		}
		st.retrying = true
		if resp != nil {
			discard(resp)
		}
		if st.cancelTry != nil {
			st.cancelTry()
			st.cancelTry = nil
		}
		in.st.inflight.Add(-1)
		st.inflight = false
		in, done = next, ndone
		rt.res.Retried()
		t.r.log.Debug("retrying on another instance", "route", rt.route.Name, "instance", next.id, "err", err)
	}
}

// try sends one try of out to in and reports its outcome to in's counters,
// breaker (done) and outlier detection. gone reports that the client went
// away or failed to send its body: nothing to retry.
func (t roundTripper) try(rt *routeRT, st *reqState, in *inst, done func(Outcome), out *http.Request) (resp *http.Response, err error, gone bool) {
	st.chosen, st.inflight = in, true
	st.tried[st.ntried] = in
	st.ntried++
	in.st.inflight.Add(1)
	out.URL.Host = in.addr
	if st.replay != nil {
		out.Body = io.NopCloser(bytes.NewReader(st.replay))
	}
	if rt.retry != nil {
		b := &rt.shared.budget
		b.active.Add(1)
		defer func() {
			b.active.Add(-1)
			if st.retrying {
				b.retrying.Add(-1)
				st.retrying = false
			}
		}()
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
	return resp, err, gone
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
			a := rand.IntN(n)
			b := rand.IntN(n - 1)
			if b >= a {
				b++
			}
			if p.insts[b].st.inflight.Load() < p.insts[a].st.inflight.Load() {
				a, b = b, a
			}
			for _, i := range [2]int{a, b} {
				if in, done, ok := tryInst(p.insts[i], st, skipOut); ok {
					return in, done, nil
				}
			}
			start = a
		}
	case BalancerWeighted:
		if total := p.cum[n-1]; total > 0 {
			start = searchCum(p.cum, rand.IntN(total))
		}
	}
	for i := 0; i < n; i++ {
		if in, done, ok := tryInst(p.insts[(start+i)%n], st, skipOut); ok {
			return in, done, nil
		}
	}
	if st.ntried > 0 {
		return nil, nil, errNoInstance
	}
	// Every instance refused: breakers open, or out.
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
		return nil, nil, &proxyErr{status: http.StatusServiceUnavailable, code: "unavailable", msg: "no healthy instance of " + p.what + ": every one is ejected or failing its health checks", retryAfter: 1}
	}
	secs := int64((wait + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return nil, nil, &proxyErr{status: http.StatusServiceUnavailable, code: "unavailable", msg: "every instance of route " + rt.route.Name + " has an open circuit breaker", retryAfter: secs}
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

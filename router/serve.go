package router

import (
	"context"
	"encoding/json"
	"errors"
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

// Exchange is one request on its way through the router, from Begin (or
// ServeHTTP) to End: its route, the instances tried and chosen, its status.
// Exchanges are pooled; an engine uses one from one goroutine at a time
// (the request's, or its event loop's), and never after End.
type Exchange struct {
	r        *Router
	in       Inbound
	start    time.Time
	snap     *snapshot
	rt       *routeRT // nil when no route matched
	pool     *pool    // the instances to balance over: the route's or a subset's
	pinned   *inst
	pinID    string
	chosen   *inst
	tried    [MaxRetries + 1]*inst
	ntried   int
	status   int
	inflight bool // chosen counts the request in flight
	retrying bool // the try being sent is a retry: it holds a retry budget slot

	trying  bool   // a try FirstTry or NextTry started waits for TryDone
	ticket  Ticket // the chosen instance's breaker's record of the try, if it has a breaker
	retries int    // how many retries the request may get
	retried int    // how many it got
	again   bool   // TryDone asked for a retry: NextTry may start it
	tryGone bool   // the last try ended with the client gone (ErrorAnswer without a Sender)
	tryErr  error  // the last try's error, for the retry's log line

	sender Sender
	stdIn  stdInbound // the net/http engine's Inbound and Sender, kept here
	std    stdSender  // so that ServeHTTP allocates neither
}

type stateKey struct{}

func stateFrom(ctx context.Context) *Exchange {
	st, _ := ctx.Value(stateKey{}).(*Exchange)
	return st
}

// ServeHTTP routes one request: the net/http engine. Answers the proxy
// gives itself are JSON in Sluice's error shape (see Answer).
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	x := r.statePool.Get().(*Exchange)
	*x = Exchange{r: r, start: r.now()}
	x.stdIn.req = req
	x.in = &x.stdIn
	defer r.release(x)
	if a := r.begin(x); a != nil {
		writeAnswer(w, a)
		return
	}
	if x.pinned != nil {
		w.Header()[InstanceHeader] = []string{x.pinned.id}
	}
	x.std.x = x
	ctx := context.WithValue(req.Context(), stateKey{}, x)
	out := req.WithContext(ctx)
	if r.cfg.BodyTimeout > 0 && req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0 {
		// The deadline is on the socket's clock, not Config.Now.
		if b := newDeadlineBody(w, req.Body, time.Now().Add(r.cfg.BodyTimeout)); b != nil {
			x.std.body, out.Body = b, b
		}
	}
	r.proxy.ServeHTTP(w, out)
}

// begin routes x: h2c refused, route match, rate limit, pin, subset. It
// returns the answer when the router answers the request itself.
func (r *Router) begin(x *Exchange) *Answer {
	snap := r.snap.Load()
	x.snap = snap
	in := x.in
	if isH2CUpgrade(in) {
		return x.answer(newAnswer(http.StatusBadRequest, "invalid", "Upgrade: h2c is not supported through the proxy", 0, nil))
	}
	e := snap.table.match(in)
	if e == nil {
		return x.answer(newAnswer(http.StatusNotFound, "not_found", "no route matches "+in.Method()+" "+in.Host()+in.Path(), 0, nil))
	}
	rt := snap.routes[e.idx]
	x.rt = rt
	if rt.limiter != nil {
		if a := r.allow(x, rt); a != nil {
			return x.answer(a)
		}
	}
	if token := pinToken(in); token != "" {
		if a := r.resolvePinTarget(x, rt, token); a != nil {
			return x.answer(a)
		}
	}
	x.pool = &rt.pool
	if rt.subsets != nil && x.pinned == nil {
		p, a := r.subsetPool(x, rt)
		if a != nil {
			return x.answer(a)
		}
		x.pool = p
	}
	return nil
}

// answer records a as x's status and returns it.
func (x *Exchange) answer(a *Answer) *Answer {
	x.status = a.Status
	return a
}

// allow takes a token of rt's rate limit for the request. When there is
// none it returns the 429 answer with Retry-After and the RateLimit
// headers.
func (r *Router) allow(x *Exchange, rt *routeRT) *Answer {
	d := rt.limiter.Allow(r.limitKey(rt, x.in), x.start)
	if d.OK {
		return nil
	}
	name := rt.route.Name
	secs := retryAfterSeconds(d.RetryAfter)
	rt.metrics.RateLimited()
	rt.lim.rejected.Add(1)
	return newAnswer(http.StatusTooManyRequests, "rate_limited", "rate limit of route "+name+" exceeded", secs, nil,
		HeaderField{"Ratelimit-Policy", rt.policy},
		HeaderField{"Ratelimit", strconv.Quote(name) + ";r=" + strconv.Itoa(d.Remaining) + ";t=" + strconv.FormatInt(secs, 10)})
}

// resolvePinTarget resolves pin token for a request on rt and sets x's
// pin. An unknown, expired or revoked pin is answered 403 with the reason,
// a failed lookup or a pinned instance the route does not have 503.
func (r *Router) resolvePinTarget(x *Exchange, rt *routeRT, token string) *Answer {
	pin, err := r.resolvePin(x.in.Context(), strings.Clone(token)) // the token may point into the engine's buffers
	if err != nil {
		if reason := pinReason(err); reason != "" {
			return newAnswer(http.StatusForbidden, "forbidden", err.Error(), 0, map[string]string{"reason": reason})
		}
		r.log.Warn("pin lookup", "route", rt.route.Name, "err", err)
		return newAnswer(http.StatusServiceUnavailable, "unavailable", "pin lookup failed", 1, nil)
	}
	x.pinID = pin.ID
	svc := rt.route.Upstream.Service
	if svc == "" {
		return nil
	}
	id, ok := pin.Targets[svc]
	if !ok {
		return nil
	}
	if x.pinned = rt.byID[id]; x.pinned == nil {
		return newAnswer(http.StatusServiceUnavailable, "unavailable", "pinned instance "+id+" of service "+svc+" is not registered", 0, nil)
	}
	return nil
}

// subsetPool chooses the subset of rt a request goes to (forced, sticky or
// by weight). When the forced subset or every subset has no instance it
// returns the 503 answer.
func (r *Router) subsetPool(x *Exchange, rt *routeRT) (*pool, *Answer) {
	p, forced := r.choosePool(rt.subsets, x.in)
	if p != nil {
		return p, nil
	}
	name := rt.route.Name
	msg := "no instance of service " + rt.route.Upstream.Service + " is in a subset of route " + name
	if forced != "" {
		msg = "subset " + forced + " of route " + name + " has no instance"
	}
	return nil, newAnswer(http.StatusServiceUnavailable, "unavailable", msg, 1, nil)
}

// release ends a request: in-flight count, metrics, access log; then
// recycles x. Deferred by ServeHTTP, so it runs even when ReverseProxy
// aborts a broken stream.
func (r *Router) release(x *Exchange) {
	if x.trying {
		// The engine ended the request without saying how its try ended:
		// as the client going away, which judges no instance.
		x.TryDone(0, errTryAbandoned, true)
	}
	m, up, route, id := x.snap.none, x.snap.noneUp, "", ""
	if rt := x.rt; rt != nil {
		m, up, route = rt.metrics, rt.self, rt.route.Name
	}
	if x.chosen != nil {
		up, id = x.chosen.m, x.chosen.id
		if x.inflight {
			x.chosen.st.inflight.Add(-1)
		}
	}
	if x.std.cancelTry != nil {
		x.std.cancelTry()
	}
	status := x.status
	if status == 0 {
		status = http.StatusBadGateway
	}
	r.finish(x.in, m, up, route, id, x.pinID, status, x.start)
	*x = Exchange{}
	r.statePool.Put(x)
}

// finish records one request in the metrics and the access log.
func (r *Router) finish(in Inbound, m RouteMetrics, up UpstreamMetrics, route, instance, pinID string, status int, start time.Time) {
	d := r.now().Sub(start)
	m.Observe(d)
	up.Response(status)
	if r.access == nil {
		return
	}
	r.access.LogAttrs(in.Context(), slog.LevelInfo, "request",
		slog.String("route", route),
		slog.String("instance", instance),
		slog.String("pin", pinID),
		slog.String("method", in.Method()),
		slog.String("path", in.Path()),
		slog.Int("status", status),
		slog.Duration("duration", d),
		slog.String("remote", in.RemoteAddr()),
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

func pinToken(in Inbound) string {
	if v := in.Header(PinHeader); v != "" {
		return v
	}
	return in.Cookie(PinCookie)
}

func isH2CUpgrade(in Inbound) bool {
	for _, v := range in.HeaderValues("Upgrade") {
		for p := range strings.SplitSeq(v, ",") {
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
func (r *Router) limitKey(rt *routeRT, in Inbound) string {
	switch rt.keyKind {
	case "ip":
		return ipKey(r.clientIP(in))
	case "header":
		return in.Header(rt.keyHeader)
	}
	return ""
}

// clientIP is the peer's address, or, when the peer is a trusted proxy, the
// right-most address of X-Forwarded-For that is not a trusted proxy.
func (r *Router) clientIP(in Inbound) string {
	host := remoteHost(in.RemoteAddr())
	if len(r.trusted) == 0 || !r.isTrusted(host) {
		return host
	}
	xff := in.HeaderValues("X-Forwarded-For")
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

// errTryAbandoned ends a try the engine did not end with TryDone before
// End.
var errTryAbandoned = errors.New("router: the request ended before its try")

// startTry starts a try on in, which choose picked: it lets go of the
// in-flight count of the try it retries, if any, counts the request in
// flight on in and the try in the route's retry budget (with a retry
// policy), and returns the try with the per-try timeout, if any.
func (x *Exchange) startTry(in *inst) Try {
	rt := x.rt
	if x.inflight {
		x.chosen.st.inflight.Add(-1)
	}
	x.chosen, x.inflight, x.trying = in, true, true
	x.tried[x.ntried] = in
	x.ntried++
	in.st.inflight.Add(1)
	t := Try{Addr: in.addr, Timeout: rt.timeout}
	if rr := rt.retry; rr != nil {
		if rr.perTry > 0 && rr.perTry < t.Timeout {
			t.Timeout = rr.perTry
		}
		rt.shared.budget.active.Add(1)
	}
	return t
}

// endTry ends a try in the route's retry budget: it is no longer active,
// and the retry slot it held, if any, is given back.
func (x *Exchange) endTry() {
	b := &x.rt.shared.budget
	b.active.Add(-1)
	if x.retrying {
		b.retrying.Add(-1)
		x.retrying = false
	}
}

// count adds one request to the instance's counters; a failure is what a
// breaker counts as one (connection error, timeout, 5xx), not a try the
// client gave up or failed to send its body for (clientGone).
func (s *instState) count(status int, err error, clientGone bool) {
	s.requests.Add(1)
	if (err != nil && !clientGone) || (err == nil && status >= 500) {
		s.failures.Add(1)
	}
}

// clientGone reports whether the client went away or failed to send its
// body (it timed out or broke off): not the instance's fault.
func (x *Exchange) clientGone() bool {
	body, gone := x.sender.ClientErr()
	return body != nil || gone
}

func isConnectError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// choose chooses the instance of a try from the request's pool: one not
// tried yet, not out (unless the route is in panic mode) and whose breaker,
// if it has one, admits the try (its Ticket is then kept in x.ticket). It
// returns a *proxyErr 503 when there is no instance, when every
// candidate's breaker is open, or when every candidate is out (ejected,
// failing health checks) and the route is not in panic mode;
// errNoInstance when every candidate left was tried already.
func (r *Router) choose(rt *routeRT, st *Exchange) (*inst, error) {
	p := st.pool
	n := len(p.insts)
	if n == 0 {
		return nil, &proxyErr{status: http.StatusServiceUnavailable, code: "unavailable", msg: "no registered instance of " + p.what, retryAfter: 1}
	}
	skipOut := rt.health && !rt.shared.panic.Load()
	start := 0
	switch rt.route.Upstream.EffectiveBalancer() {
	case BalancerRoundRobin:
		if n > 1 { // one instance: no shared counter to bump
			start = int(p.rr.Add(1) % uint64(n))
		}
	case BalancerLeastRequests:
		if n > 1 {
			a, b := p.twoChoices()
			for _, i := range [2]int{a, b} {
				if in := p.insts[i]; admit(in, st, skipOut) {
					return in, nil
				}
			}
			start = a
		}
	case BalancerWeighted:
		start = p.weightedChoice()
	}
	for i := 0; i < n; i++ {
		if in := p.insts[(start+i)%n]; admit(in, st, skipOut) {
			return in, nil
		}
	}
	if st.ntried > 0 {
		return nil, errNoInstance
	}
	return nil, r.allRefused(rt, p, skipOut)
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

// admit reports whether the try may go to in: not when in was tried
// already, it is out (skipOut: ejected or failing health checks) or its
// breaker refuses it. When in's breaker admits it, its Ticket is kept in
// x.ticket for TryDone.
func admit(in *inst, x *Exchange, skipOut bool) bool {
	for i := 0; i < x.ntried; i++ {
		if x.tried[i] == in {
			return false
		}
	}
	if skipOut && in.st.flags.Load() != 0 {
		return false
	}
	if b := in.st.breaker; b != nil {
		// Allow refuses while open: no separate State check (one lock less).
		t, err := b.Allow()
		if err != nil {
			return false
		}
		x.ticket = t
	}
	return true
}

// errorAnswer is the answer to a request whose forwarding ended with err.
func (r *Router) errorAnswer(x *Exchange, err error) *Answer {
	var pe *proxyErr
	var te interface{ Timeout() bool }
	var refused *UpstreamRefusedError
	var bodyErr error
	gone := false
	if x != nil && x.sender != nil {
		bodyErr, gone = x.sender.ClientErr()
	} else if x != nil {
		gone = x.tryGone // an engine without a Sender said so in TryDone
	}
	if bodyErr == nil && errors.Is(err, ErrBodyTimeout) {
		bodyErr = err // an engine without a Sender: the body did not arrive in time
	}
	var a *Answer
	switch {
	case errors.As(err, &pe):
		a = newAnswer(pe.status, pe.code, pe.msg, pe.retryAfter, nil)
	case bodyErr != nil && errors.Is(bodyErr, ErrBodyTimeout):
		// Checked before the context: net/http cancels it on the failed read.
		a = newAnswer(http.StatusRequestTimeout, "invalid", "the request body did not arrive within "+r.cfg.BodyTimeout.String(), 0, nil)
		a.Close = true
	case gone:
		a = &Answer{Status: 499} // client closed the request: nobody to answer
	case bodyErr != nil:
		a = newAnswer(http.StatusBadRequest, "invalid", "the request body could not be read", 0, nil)
		a.Close = true
	case errors.As(err, &refused):
		msg := "upstream refused by the proxy's upstream policy: " + refused.Reason
		if x != nil && x.chosen != nil {
			msg = "upstream instance " + x.chosen.id + " (" + refused.Addr.String() + ") refused by the proxy's upstream policy: " + refused.Reason
		}
		a = newAnswer(http.StatusBadGateway, "upstream_refused", msg, 0, map[string]string{"reason": refused.Reason},
			HeaderField{UpstreamRefusedHeader, refused.Reason})
	case errors.As(err, &te) && te.Timeout() && !isConnectError(err):
		a = newAnswer(http.StatusGatewayTimeout, "unavailable", "upstream did not answer in time", 0, nil)
	default:
		msg := "upstream unreachable"
		if x != nil && x.chosen != nil {
			msg = "upstream instance " + x.chosen.id + " unreachable"
		}
		a = newAnswer(http.StatusBadGateway, "unavailable", msg, 0, nil)
	}
	if x != nil && x.rt != nil && a.Status != 499 {
		r.log.Debug("proxy error", "route", x.rt.route.Name, "status", a.Status, "err", err)
	}
	return a
}

// newAnswer makes an answer in Sluice's JSON error shape, with the
// headers every such answer has, Retry-After when retryAfter > 0, and
// extra; details may be nil.
func newAnswer(status int, code, msg string, retryAfter int64, details map[string]string, extra ...HeaderField) *Answer {
	a := &Answer{Status: status}
	a.Header = make([]HeaderField, 0, 4+len(extra))
	a.Header = append(a.Header,
		HeaderField{"Content-Type", "application/json"},
		HeaderField{"Cache-Control", "no-store"},
		HeaderField{"X-Content-Type-Options", "nosniff"})
	if retryAfter > 0 {
		a.Header = append(a.Header, HeaderField{"Retry-After", strconv.FormatInt(retryAfter, 10)})
	}
	a.Header = append(a.Header, extra...)
	body := errorBody{}
	body.Error.Code, body.Error.Message, body.Error.Details = code, msg, details
	b, _ := json.Marshal(body)
	a.Body = append(b, '\n')
	return a
}

// writeAnswer writes a to w (nothing for 499: the client is gone).
func writeAnswer(w http.ResponseWriter, a *Answer) {
	if a.Status == 499 {
		return
	}
	h := w.Header()
	for _, f := range a.Header {
		h[f.Name] = []string{f.Value}
	}
	if a.Close {
		h["Connection"] = []string{"close"}
	}
	w.WriteHeader(a.Status)
	_, _ = w.Write(a.Body)
}

type errorBody struct {
	Error struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Details map[string]string `json:"details,omitempty"`
	} `json:"error"`
}

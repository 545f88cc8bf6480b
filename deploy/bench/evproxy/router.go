//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/breaker"
	"github.com/sluicehq/sluice/router/prommetrics"
	"github.com/sluicehq/sluice/router/ratelimit"
)

// routeWork is Sluice's router work for each request, done on the event
// loop before the request is forwarded (-router): Begin (match, rate limit,
// pin, subset), Forward with a try that answers 200 at once (balancer,
// breaker, retry budget) and End (metrics), on the route proxy.sh gives
// Sluice (a rate limit far above the load and a breaker). It measures what
// an event-loop engine would pay for the router, not an engine: the try's
// address is not used, the request goes to the paired upstream connection.
type routeWork struct{ r *router.Router }

func newRouteWork(upstream string) (*routeWork, error) {
	m, err := prommetrics.New(prometheus.NewRegistry())
	if err != nil {
		return nil, err
	}
	r, err := router.New(router.Config{Limiters: ratelimit.New(ratelimit.Config{}), Breakers: breaker.New(), Metrics: m})
	if err != nil {
		return nil, err
	}
	rt := router.Route{
		Name:           "bench",
		Match:          router.Match{PathPrefix: "/"},
		Upstream:       router.Upstream{Static: []string{upstream}},
		RateLimit:      &router.RateLimit{RPS: 1e8, Burst: 1e8},
		CircuitBreaker: &router.CircuitBreaker{ConsecutiveFailures: 50, OpenFor: 5 * time.Second},
	}
	if err := r.Update([]router.Route{rt}); err != nil {
		return nil, err
	}
	return &routeWork{r: r}, nil
}

// do routes the request whose head is in; an error when the router
// answered it itself (it never does on the benchmark's route).
func (w *routeWork) do(in *inbound) error {
	x, a := w.r.Begin(in)
	if a != nil {
		w.r.End(x, 0)
		return fmt.Errorf("the router answered %d", a.Status)
	}
	status, err := x.Forward(instant{})
	w.r.End(x, 0)
	if err != nil || status != 200 {
		return fmt.Errorf("forward: %d %v", status, err)
	}
	return nil
}

// instant is a Sender whose every try answers 200 at once.
type instant struct{}

func (instant) Replayable() (bool, error)               { return true, nil }
func (instant) Send(string, time.Duration) (int, error) { return 200, nil }
func (instant) Discard()                                {}
func (instant) ClientErr() (error, bool)                { return nil, false }

// inbound is router.Inbound over a request head in the loop's buffer
// (the request line and the header lines, CRLF-terminated).
type inbound struct {
	head   []byte
	remote string
}

func str(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func (in *inbound) line() (method, target []byte) {
	first := in.head
	if i := bytes.IndexByte(first, '\r'); i >= 0 {
		first = first[:i]
	}
	method, rest, _ := bytes.Cut(first, []byte(" "))
	target, _, _ = bytes.Cut(rest, []byte(" "))
	return method, target
}

func (in *inbound) Method() string { m, _ := in.line(); return str(m) }
func (in *inbound) Host() string   { return in.Header("Host") }
func (in *inbound) Path() string {
	_, t := in.line()
	if i := bytes.IndexByte(t, '?'); i >= 0 {
		t = t[:i]
	}
	return str(t)
}

// Header returns the first value of the header name (any case).
func (in *inbound) Header(name string) string {
	if vs := in.values(name, true); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func (in *inbound) HeaderValues(name string) []string { return in.values(name, false) }

func (in *inbound) values(name string, first bool) []string {
	var out []string
	h := in.head
	if i := bytes.IndexByte(h, '\n'); i >= 0 {
		h = h[i+1:] // past the request line
	}
	for k, v, h, ok := nextField(h); ok; k, v, h, ok = nextField(h) {
		if bytes.EqualFold(k, []byte(name)) {
			out = append(out, str(v))
			if first {
				break
			}
		}
	}
	return out
}

func (in *inbound) Cookie(name string) string {
	for _, c := range in.values("Cookie", false) {
		for c != "" {
			var part string
			part, c, _ = cut(c, ';')
			k, v, _ := cut(part, '=')
			if trim(k) == name {
				return trim(v)
			}
		}
	}
	return ""
}

func cut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func trim(s string) string {
	for len(s) > 0 && s[0] == ' ' {
		s = s[1:]
	}
	for len(s) > 0 && s[len(s)-1] == ' ' {
		s = s[:len(s)-1]
	}
	return s
}

func (in *inbound) RemoteAddr() string       { return in.remote }
func (in *inbound) Context() context.Context { return context.Background() }

// remoteAddr formats a client's address as router.Inbound gives it.
func remoteAddr(ip []byte, port int) string {
	return net.JoinHostPort(string(ip), strconv.Itoa(port))
}

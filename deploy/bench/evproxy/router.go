//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
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
	v, _, _ := in.field(name, in.fields())
	return str(v)
}

func (in *inbound) HeaderValues(name string) []string {
	var out []string
	for v, h, ok := in.field(name, in.fields()); ok; v, h, ok = in.field(name, h) {
		out = append(out, str(v))
	}
	return out
}

// fields is the head past its request line.
func (in *inbound) fields() []byte {
	if i := bytes.IndexByte(in.head, '\n'); i >= 0 {
		return in.head[i+1:]
	}
	return nil
}

// field returns the value of the first field name (any case) in h, and
// what follows it.
func (in *inbound) field(name string, h []byte) (value, rest []byte, ok bool) {
	for k, v, h, more := nextField(h); more; k, v, h, more = nextField(h) {
		if bytes.EqualFold(k, []byte(name)) {
			return v, h, true
		}
	}
	return nil, nil, false
}

func (in *inbound) Cookie(name string) string {
	for _, c := range in.HeaderValues("Cookie") {
		for c != "" {
			var part string
			part, c, _ = strings.Cut(c, ";")
			if k, v, _ := strings.Cut(part, "="); strings.TrimSpace(k) == name {
				return strings.TrimSpace(v)
			}
		}
	}
	return ""
}

func (in *inbound) RemoteAddr() string       { return in.remote }
func (in *inbound) Context() context.Context { return context.Background() }

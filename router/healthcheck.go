package router

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Defaults and bounds of active health checks.
const (
	// DefaultHealthCheckInterval is HealthCheck.Interval when 0.
	DefaultHealthCheckInterval = 10 * time.Second
	// MinHealthCheckInterval bounds HealthCheck.Interval from below, so
	// that a typo cannot turn health checks into a flood.
	MinHealthCheckInterval = 100 * time.Millisecond
	// DefaultHealthCheckTimeout is HealthCheck.Timeout when 0 (at most the
	// interval).
	DefaultHealthCheckTimeout = 2 * time.Second
	// DefaultHealthyThreshold is HealthCheck.HealthyThreshold when 0.
	DefaultHealthyThreshold = 2
	// DefaultUnhealthyThreshold is HealthCheck.UnhealthyThreshold when 0.
	DefaultUnhealthyThreshold = 3
	// HealthCheckUserAgent is the User-Agent of health-check requests.
	HealthCheckUserAgent = "sluice-health-check"
)

// HealthCheck probes every upstream instance of a route with GET Path:
// a 2xx answer within Timeout passes, anything else fails. An instance
// that fails UnhealthyThreshold checks in a row leaves the balancer; it
// returns after HealthyThreshold passes in a row. With health checks, an
// instance that outlier detection ejected or whose circuit breaker tripped
// returns only through them: once its ejection time (or the breaker's
// open_for) is over and HealthyThreshold checks made after it went out
// passed; its breaker is then closed. Checks of an instance are Interval
// apart plus up to 10 % random jitter, and its first check comes at a
// random moment of the first interval, so that many instances and proxies
// do not check in step. Checks connect under the router's UpstreamPolicy,
// like requests; the Host header is the instance's address.
type HealthCheck struct {
	// Path is the request path (and query), starting with "/".
	Path string
	// Interval is the time between checks; 0 means
	// DefaultHealthCheckInterval, at least MinHealthCheckInterval.
	Interval time.Duration
	// Timeout bounds one check; 0 means DefaultHealthCheckTimeout, at most
	// Interval.
	Timeout time.Duration
	// HealthyThreshold is the passes in a row that bring an instance back;
	// 0 means DefaultHealthyThreshold.
	HealthyThreshold int
	// UnhealthyThreshold is the failures in a row that take it out; 0
	// means DefaultUnhealthyThreshold.
	UnhealthyThreshold int
}

// Effective returns the settings with every default applied.
func (h HealthCheck) Effective() HealthCheck {
	if h.Interval <= 0 {
		h.Interval = DefaultHealthCheckInterval
	}
	if h.Timeout <= 0 {
		h.Timeout = min(DefaultHealthCheckTimeout, h.Interval)
	}
	if h.HealthyThreshold <= 0 {
		h.HealthyThreshold = DefaultHealthyThreshold
	}
	if h.UnhealthyThreshold <= 0 {
		h.UnhealthyThreshold = DefaultUnhealthyThreshold
	}
	return h
}

func (h *HealthCheck) validate(path string) error {
	if !strings.HasPrefix(h.Path, "/") || strings.ContainsAny(h.Path, "# \t\r\n") || len(h.Path) > 1024 {
		return fieldErr(path+".path", h.Path, `must start with "/" and hold no fragment or space (at most 1024 bytes)`)
	}
	if h.Interval != 0 && (h.Interval < MinHealthCheckInterval || h.Interval > time.Hour) {
		return fieldErr(path+".interval", h.Interval.String(), "must be between "+MinHealthCheckInterval.String()+" and 1h")
	}
	if h.Timeout < 0 || h.Timeout > h.Effective().Interval {
		return fieldErr(path+".timeout", h.Timeout.String(), "must be between 0 and the interval ("+h.Effective().Interval.String()+")")
	}
	if h.HealthyThreshold < 0 || h.HealthyThreshold > 1000 {
		return fieldErr(path+".healthy_threshold", strconv.Itoa(h.HealthyThreshold), "must be between 1 and 1000")
	}
	if h.UnhealthyThreshold < 0 || h.UnhealthyThreshold > 1000 {
		return fieldErr(path+".unhealthy_threshold", strconv.Itoa(h.UnhealthyThreshold), "must be between 1 and 1000")
	}
	return nil
}

// String renders the settings for Table.String, defaults applied.
func (h HealthCheck) String() string {
	e := h.Effective()
	return fmt.Sprintf("GET %s every %s timeout %s up %d down %d", e.Path, e.Interval, e.Timeout, e.HealthyThreshold, e.UnhealthyThreshold)
}

// startHealthCheck runs st's health checks until st is retired or the
// router closed. Caller holds r.mu.
func (r *Router) startHealthCheck(st *instState, addr string) {
	ctx, cancel := context.WithCancel(r.bg)
	st.stopHC = cancel
	if !r.hcGroup.Go(func() { r.healthLoop(ctx, st, addr) }) {
		cancel()
	}
}

// healthLoop checks one instance every interval (jittered) and moves it
// out of and back into the balancer by the thresholds.
func (r *Router) healthLoop(ctx context.Context, st *instState, addr string) {
	hc := st.hc.Effective()
	url := "http://" + addr + hc.Path
	wait := rand.N(hc.Interval)
	pass, fail := 0, 0
	for {
		if r.hcGroup.Sleep(ctx, wait) != nil {
			return
		}
		wait = hc.Interval + rand.N(hc.Interval/10+1)
		gen := st.gen.Load()
		ok := r.probe(ctx, url, hc.Timeout)
		if ctx.Err() != nil {
			return
		}
		if st.gen.Load() != gen {
			pass, fail = 0, 0 // it went out while this check ran: start counting afresh
			continue
		}
		if ok {
			pass, fail = pass+1, 0
			if pass >= hc.HealthyThreshold && st.flags.Load() != 0 && time.Now().UnixNano() >= st.heldUntil.Load() {
				r.restore(st, "health checks passed")
			}
			continue
		}
		pass, fail = 0, fail+1
		if fail >= hc.UnhealthyThreshold && st.flags.Load()&outUnhealthy == 0 {
			r.markUnhealthy(st, false, 0)
		}
	}
}

// probe sends one health check: true for a 2xx answer within timeout.
func (r *Router) probe(ctx context.Context, url string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", HealthCheckUserAgent)
	resp, err := r.hcTransport.RoundTrip(req)
	if err != nil {
		return false
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

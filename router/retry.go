package router

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// RetryOn names a condition under which a failed try is sent again to
// another instance. Besides the two constants, a status code from 500 to
// 599 written in decimal ("503") retries on that answer.
type RetryOn string

// The conditions a RetryPolicy may name besides status codes.
const (
	// RetryConnectFailure: connecting to the instance failed, so the
	// request was never sent (connection refused, dial timeout, a refusal
	// of the upstream policy).
	RetryConnectFailure RetryOn = "connect-failure"
	// RetryReset: the request was sent, and the connection broke or the
	// try timed out (PerTryTimeout, or the route's Timeout) before the
	// response headers arrived. The instance may have acted on the request.
	RetryReset RetryOn = "reset"
)

// Defaults and bounds of retries.
const (
	// DefaultRetryBackoffBase is Backoff.Base when it is 0; Backoff.Max
	// defaults to 10 × Base.
	DefaultRetryBackoffBase = 25 * time.Millisecond
	// DefaultRetryBudgetPercent and DefaultRetryMinConcurrency are the
	// retry budget when RetryPolicy.Budget is nil or its fields are 0
	// (Envoy's defaults): retries in progress may be at most 20 % of the
	// route's active requests, and 3 whatever the load.
	DefaultRetryBudgetPercent  = 20
	DefaultRetryMinConcurrency = 3
	// MaxRetryBodyBytes bounds the request body the proxy keeps in memory
	// to send again: a request with a longer body, or one whose length is
	// not known up front (chunked), is streamed to the upstream and never
	// retried.
	MaxRetryBodyBytes = 64 << 10
	// MaxRetryBackoff bounds Backoff.Base and Backoff.Max.
	MaxRetryBackoff = 10 * time.Second
)

// RetryPolicy says when a route sends a failed request again. Every retry
// goes to an instance the request has not tried yet (in the same subset),
// after a jittered backoff, and only while the route's retry budget allows
// it, so that a failing upstream sees little more load than its clients
// send. Requests with methods that are not idempotent (POST, PATCH …) are
// never retried unless NonIdempotent is set. A request body is sent again
// only when it is at most MaxRetryBodyBytes long and its length is known;
// a request with a longer or chunked body is not retried.
type RetryPolicy struct {
	// Attempts is how many times a failed request is tried again, each
	// time on another instance (0..MaxRetries): at most Attempts+1 tries.
	// routes.yaml's `retries: N` means Attempts N.
	Attempts int
	// PerTryTimeout bounds each try's wait for the response headers; 0
	// means only the route's Timeout bounds it. A try cut by it counts as
	// RetryReset. It must not exceed the route's Timeout.
	PerTryTimeout time.Duration
	// On lists the conditions that retry: RetryConnectFailure,
	// RetryReset, and status codes 500–599. Empty means
	// [RetryConnectFailure].
	On []RetryOn
	// Backoff is the wait before each retry; nil means the defaults.
	Backoff *Backoff
	// NonIdempotent lets POST, PATCH, CONNECT and other methods that are
	// not idempotent be retried too. Only set it for upstreams that
	// tolerate a request arriving twice.
	NonIdempotent bool
	// Budget bounds the retries in progress; nil means the defaults.
	Budget *RetryBudget
}

// Backoff is a fully jittered exponential backoff: the wait before retry n
// (n = 1, 2 …) is random between 0 and min(Max, Base × 2^(n-1)).
type Backoff struct {
	// Base is the first retry's bound; 0 means DefaultRetryBackoffBase.
	Base time.Duration
	// Max caps the bound; 0 means 10 × Base.
	Max time.Duration
}

// RetryBudget bounds a route's retries in progress (Envoy's retry budget):
// a retry is sent only while fewer than max(MinConcurrency, Percent % of
// the route's active upstream requests) retries are waiting for their
// answer. Active upstream requests are the tries of the route's requests
// waiting for response headers, retries included; so with the default 20
// %, at most one try in five is a retry, and a failing upstream gets at
// most 1.25 times the tries it would get without retries (less in
// practice: backoff waits are not counted), plus the MinConcurrency
// retries that may run however few requests are active. When the budget
// is used up the request ends with the answer it got.
type RetryBudget struct {
	// Percent of the active requests that may be retrying (0 < Percent ≤
	// 100); 0 means DefaultRetryBudgetPercent.
	Percent float64
	// MinConcurrency is how many requests may retry at once however few
	// are active; 0 means DefaultRetryMinConcurrency.
	MinConcurrency int
}

// EffectiveOn returns On, or [RetryConnectFailure] when On is empty.
func (p *RetryPolicy) EffectiveOn() []RetryOn {
	if len(p.On) == 0 {
		return []RetryOn{RetryConnectFailure}
	}
	return p.On
}

// EffectiveBackoff returns the backoff's base and cap with defaults applied.
func (p *RetryPolicy) EffectiveBackoff() (base, limit time.Duration) {
	if p.Backoff != nil {
		base, limit = p.Backoff.Base, p.Backoff.Max
	}
	if base <= 0 {
		base = DefaultRetryBackoffBase
	}
	if limit <= 0 {
		limit = 10 * base
	}
	return base, max(base, limit)
}

// EffectiveBudget returns the budget's percent and minimum with defaults applied.
func (p *RetryPolicy) EffectiveBudget() (percent float64, minConcurrency int) {
	if p.Budget != nil {
		percent, minConcurrency = p.Budget.Percent, p.Budget.MinConcurrency
	}
	if percent <= 0 {
		percent = DefaultRetryBudgetPercent
	}
	if minConcurrency <= 0 {
		minConcurrency = DefaultRetryMinConcurrency
	}
	return percent, minConcurrency
}

// statusCode returns the status a RetryOn names, or 0.
func (o RetryOn) statusCode() int {
	n, err := strconv.Atoi(string(o))
	if err != nil || n < 500 || n > 599 || strconv.Itoa(n) != string(o) {
		return 0
	}
	return n
}

func (p *RetryPolicy) validate(path string, timeout time.Duration) error {
	if p.Attempts < 0 || p.Attempts > MaxRetries {
		return fieldErr(path+".attempts", strconv.Itoa(p.Attempts), fmt.Sprintf("must be between 0 and %d", MaxRetries))
	}
	if p.PerTryTimeout < 0 || p.PerTryTimeout > timeout {
		return fieldErr(path+".per_try_timeout", p.PerTryTimeout.String(), "must be between 0 and the route's timeout ("+timeout.String()+")")
	}
	for i, o := range p.On {
		if o != RetryConnectFailure && o != RetryReset && o.statusCode() == 0 {
			return fieldErr(fmt.Sprintf("%s.on[%d]", path, i), string(o), "must be connect-failure, reset or a status code from 500 to 599")
		}
	}
	if b := p.Backoff; b != nil {
		if b.Base < 0 || b.Base > MaxRetryBackoff {
			return fieldErr(path+".backoff.base", b.Base.String(), "must be between 0 and "+MaxRetryBackoff.String())
		}
		if b.Max < 0 || b.Max > MaxRetryBackoff || (b.Max > 0 && b.Max < b.Base) {
			return fieldErr(path+".backoff.max", b.Max.String(), "must be between backoff.base and "+MaxRetryBackoff.String())
		}
	}
	if b := p.Budget; b != nil {
		if !(b.Percent >= 0 && b.Percent <= 100) {
			return fieldErr(path+".budget.percent", strconv.FormatFloat(b.Percent, 'g', -1, 64), "must be between 0 and 100")
		}
		if b.MinConcurrency < 0 || b.MinConcurrency > 1e6 {
			return fieldErr(path+".budget.min_concurrency", strconv.Itoa(b.MinConcurrency), "must be between 0 and 1000000")
		}
	}
	return nil
}

// String renders the policy for Table.String: attempts, conditions,
// per-try timeout, backoff and budget, with defaults applied.
func (p *RetryPolicy) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d on=", p.Attempts)
	for i, o := range p.EffectiveOn() {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(string(o))
	}
	if p.PerTryTimeout > 0 {
		fmt.Fprintf(&b, " per_try=%s", p.PerTryTimeout)
	}
	base, limit := p.EffectiveBackoff()
	pct, minc := p.EffectiveBudget()
	fmt.Fprintf(&b, " backoff=%s/%s budget=%g%%/%d", base, limit, pct, minc)
	if p.NonIdempotent {
		b.WriteString(" non_idempotent")
	}
	return b.String()
}

// retryRT is a route's RetryPolicy compiled for requests.
type retryRT struct {
	attempts      int
	perTry        time.Duration
	connect       bool
	reset         bool
	statuses      [2]uint64 // bit s-500: retry on status s
	nonIdempotent bool
	base, limit   time.Duration
	percent       float64
	minConc       int64
}

func newRetryRT(p *RetryPolicy) *retryRT {
	if p == nil || p.Attempts == 0 {
		return nil
	}
	rr := &retryRT{attempts: p.Attempts, perTry: p.PerTryTimeout, nonIdempotent: p.NonIdempotent}
	for _, o := range p.EffectiveOn() {
		switch o {
		case RetryConnectFailure:
			rr.connect = true
		case RetryReset:
			rr.reset = true
		default:
			if s := o.statusCode(); s > 0 {
				rr.statuses[(s-500)/64] |= 1 << ((s - 500) % 64)
			}
		}
	}
	rr.base, rr.limit = p.EffectiveBackoff()
	pct, minc := p.EffectiveBudget()
	rr.percent, rr.minConc = pct, int64(minc)
	return rr
}

// retriesFor returns how many retries req may get: 0 for a method that is
// not idempotent (unless the route allows it).
func (rr *retryRT) retriesFor(method string) int {
	if rr == nil {
		return 0
	}
	if !rr.nonIdempotent {
		switch method {
		case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		default:
			return 0
		}
	}
	return rr.attempts
}

// wants reports whether a try that ended in status or err is retried.
func (rr *retryRT) wants(status int, err error) bool {
	if err != nil {
		if isConnectError(err) {
			return rr.connect
		}
		return rr.reset
	}
	s := status - 500
	return s >= 0 && s < 100 && rr.statuses[s/64]&(1<<(s%64)) != 0
}

// backoff returns the wait before retry n (1, 2 …): fully jittered,
// random between 0 and min(limit, base × 2^(n-1)).
func (rr *retryRT) backoff(n int) time.Duration {
	bound := rr.base << min(n-1, 20)
	if bound <= 0 || bound > rr.limit {
		bound = rr.limit
	}
	return rand.N(bound + 1)
}

// retryBudget counts a route's tries and retries waiting for their
// answers; it outlives table swaps (routeShared).
type retryBudget struct {
	active   atomic.Int64 // tries waiting for response headers, retries included
	retrying atomic.Int64 // retries waiting for response headers, or about to be sent
}

// take reserves a retry: false when as many retries are in flight as the
// budget allows.
func (b *retryBudget) take(rr *retryRT) bool {
	for {
		cur := b.retrying.Load()
		limit := max(rr.minConc, int64(float64(b.active.Load())*rr.percent/100))
		if cur >= limit {
			return false
		}
		if b.retrying.CompareAndSwap(cur, cur+1) {
			return true
		}
	}
}

// errPerTryTimeout is the cause of a try cut by RetryPolicy.PerTryTimeout.
var errPerTryTimeout = errors.New("upstream did not answer within the per-try timeout")

// perTryTimeoutError is a try cut by PerTryTimeout: a timeout (504 when
// it is the last try).
type perTryTimeoutError struct{ d time.Duration }

func (e *perTryTimeoutError) Error() string {
	return "upstream did not answer within the per-try timeout of " + e.d.String()
}
func (e *perTryTimeoutError) Timeout() bool   { return true }
func (e *perTryTimeoutError) Temporary() bool { return true }

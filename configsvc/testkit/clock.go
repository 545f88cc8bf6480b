package testkit

import (
	"sync"
	"time"
)

// Clock is a fake clock: pass its Now where code takes a
// `now func() time.Time` (rate limits, breakers, pin, token and session
// expiry, instance leases), and it stands still until the test moves it
// with Advance or Set, so time-dependent behaviour is deterministic. It is
// safe for concurrent use: the code under test may read it from its own
// goroutines while the test moves it.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock that reads start.
func NewClock(start time.Time) *Clock { return &Clock{t: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d (back, for a negative d).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

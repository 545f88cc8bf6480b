package testkit

import (
	"errors"
	"testing"
	"time"
)

// Polling intervals of Eventually: it looks again after firstPoll, then
// waits twice as long each time, up to maxPoll, so that a condition that
// holds soon is seen soon and a slow one is not polled in a busy loop.
const (
	firstPoll = 5 * time.Millisecond
	maxPoll   = 100 * time.Millisecond
)

// Eventually calls cond until it returns nil. When timeout passes first it
// fails t with Fatalf, naming what, the timeout and cond's last error. cond
// is always called at least once, and once more at the deadline. Like
// t.Fatalf, it must be called from the goroutine running the test.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := firstPoll
	for {
		err := cond()
		if err == nil {
			return
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
			return
		}
		time.Sleep(min(wait, left))
		wait = min(2*wait, maxPoll)
	}
}

// EventuallyTrue is Eventually for a condition that has no error to tell:
// it calls cond until it returns true, or fails t once timeout passes.
func EventuallyTrue(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	Eventually(t, timeout, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

var errNotYet = errors.New("condition still false")

package testkit_test

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/testkit"
)

// recorder is a testing.TB whose Fatalf records the failure and ends the
// goroutine, as the real one does.
type recorder struct {
	testing.TB
	fatal string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls fn with a recorder on a goroutine of its own (Fatalf ends it)
// and returns what Fatalf recorded, "" when fn returned.
func run(t *testing.T, fn func(testing.TB)) string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	return r.fatal
}

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	calls := 0
	fatal := run(t, func(tb testing.TB) {
		testkit.Eventually(tb, 5*time.Second, "third call", func() error {
			if calls++; calls < 3 {
				return fmt.Errorf("call %d", calls)
			}
			return nil
		})
	})
	if fatal != "" || calls != 3 {
		t.Fatalf("fatal %q after %d calls, want none after 3", fatal, calls)
	}
}

func TestEventuallyFailsWithTheLastError(t *testing.T) {
	calls := 0
	start := time.Now()
	fatal := run(t, func(tb testing.TB) {
		testkit.Eventually(tb, 50*time.Millisecond, "the flag", func() error {
			calls++
			return fmt.Errorf("still off after %d calls", calls)
		})
	})
	took := time.Since(start)
	if want := fmt.Sprintf("the flag: not within 50ms: still off after %d calls", calls); fatal != want {
		t.Fatalf("fatal %q, want %q", fatal, want)
	}
	if calls < 3 || took < 50*time.Millisecond {
		t.Fatalf("%d calls in %v: want several, polling until the timeout", calls, took)
	}
}

func TestEventuallyTrue(t *testing.T) {
	n := 0
	if fatal := run(t, func(tb testing.TB) {
		testkit.EventuallyTrue(tb, 5*time.Second, "n reaches 2", func() bool { n++; return n == 2 })
	}); fatal != "" {
		t.Fatalf("unexpected failure %q", fatal)
	}
	fatal := run(t, func(tb testing.TB) {
		testkit.EventuallyTrue(tb, 20*time.Millisecond, "never", func() bool { return false })
	})
	if !strings.HasPrefix(fatal, "never: not within 20ms") {
		t.Fatalf("fatal %q, want it to name the condition and the timeout", fatal)
	}
}

func TestClockMovesOnlyWhenTold(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := testkit.NewClock(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now %v, want %v", got, start)
	}
	c.Advance(90 * time.Second)
	if got := c.Now(); !got.Equal(start.Add(90 * time.Second)) {
		t.Fatalf("after Advance: %v", got)
	}
	later := start.Add(time.Hour)
	c.Set(later)
	if got := c.Now(); !got.Equal(later) {
		t.Fatalf("after Set: %v", got)
	}
	// Readers on other goroutines while the test moves it (run with -race).
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				if c.Now().Before(later) {
					t.Error("the clock went back")
				}
			}
		})
	}
	for range 100 {
		c.Advance(time.Millisecond)
	}
	wg.Wait()
	if got, want := c.Now(), later.Add(100*time.Millisecond); !got.Equal(want) {
		t.Fatalf("Now %v, want %v", got, want)
	}
}

func TestFreeAddrCanBeListenedOn(t *testing.T) {
	addr := testkit.FreeAddr(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("FreeAddr %q, want a 127.0.0.1 address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	ln.Close()
}

package lifecycle_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/lifecycle"
)

func TestSleep(t *testing.T) {
	t.Run("FullWait", func(t *testing.T) {
		start := time.Now()
		if err := lifecycle.Sleep(context.Background(), 20*time.Millisecond); err != nil {
			t.Fatalf("Sleep = %v, want nil", err)
		}
		if waited := time.Since(start); waited < 20*time.Millisecond {
			t.Fatalf("Sleep returned after %v, want at least 20ms", waited)
		}
	})
	t.Run("ContextEnds", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := lifecycle.Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Sleep = %v, want the context's error", err)
		}
		if waited := time.Since(start); waited > 10*time.Second {
			t.Fatalf("Sleep waited %v after its context ended", waited)
		}
	})
	t.Run("EndedContextZeroWait", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := lifecycle.Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep(ended ctx, 0) = %v, want context.Canceled", err)
		}
	})
}

func TestGroup(t *testing.T) {
	var g lifecycle.Group
	var ran, returned atomic.Int32
	for range 3 {
		if !g.Go(func() {
			ran.Add(1)
			<-g.Done()
			time.Sleep(5 * time.Millisecond) // Wait must wait for this
			returned.Add(1)
		}) {
			t.Fatal("Go refused before Stop")
		}
	}
	sleepErr := make(chan error, 1)
	g.Go(func() { sleepErr <- g.Sleep(context.Background(), time.Hour) })
	if g.Stopped() {
		t.Fatal("Stopped before Stop")
	}
	if !g.Stop() {
		t.Fatal("first Stop reported false")
	}
	if g.Stop() {
		t.Fatal("second Stop reported true")
	}
	g.Wait()
	if ran.Load() != 3 || returned.Load() != 3 {
		t.Fatalf("after Wait: %d ran, %d returned; want 3 and 3", ran.Load(), returned.Load())
	}
	if err := <-sleepErr; !errors.Is(err, lifecycle.ErrStopped) {
		t.Fatalf("Group.Sleep across Stop = %v, want ErrStopped", err)
	}
	if g.Go(func() { t.Error("ran after Stop") }) {
		t.Fatal("Go accepted after Stop")
	}
	select {
	case <-g.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
}

func TestGroupDoneBeforeAnyGo(t *testing.T) {
	var g lifecycle.Group
	d := g.Done()
	g.Stop()
	select {
	case <-d:
	case <-time.After(10 * time.Second):
		t.Fatal("a Done channel taken before Stop was not closed by it")
	}
	g.Wait() // nothing started: returns at once
}

func TestBroadcast(t *testing.T) {
	var b lifecycle.Broadcast[int]
	wake := b.Wait()
	if wake != b.Wait() {
		t.Fatal("two Waits before a Fire gave two channels")
	}
	var called []int
	if !b.Notify(1, wake, func() { called = append(called, 1) }) || !b.Notify(2, wake, func() { called = append(called, 2) }) {
		t.Fatal("Notify with the current channel registered nothing")
	}
	b.Notify(2, wake, func() { called = append(called, 20) }) // replaces reader 2's
	b.Notify(3, wake, func() { called = append(called, 3) })
	b.Drop(3)
	select {
	case <-wake:
		t.Fatal("the channel closed before Fire")
	default:
	}
	notify := b.Fire()
	if len(called) != 0 {
		t.Fatal("Fire called the readers itself; the caller does, after unlocking")
	}
	notify()
	slices.Sort(called)
	if !slices.Equal(called, []int{1, 20}) {
		t.Fatalf("called %v, want [1 20]", called)
	}
	select {
	case <-wake:
	default:
		t.Fatal("Fire did not close the channel")
	}
	if b.Notify(1, wake, func() { t.Fatal("registered for a closed channel") }) {
		t.Fatal("Notify with a closed channel reported registered")
	}
	called = nil
	b.Fire()() // nobody registered since
	if len(called) != 0 {
		t.Fatalf("a second Fire called %v", called)
	}

	// NotifyUnder holds the owner's mutex around Notify and calls f itself,
	// after unlocking it, when the channel has closed already.
	var mu sync.Mutex
	past := b.Wait()
	b.Fire()()
	b.NotifyUnder(&mu, 4, past, func() {
		if !mu.TryLock() {
			t.Error("f called with the mutex held")
			return
		}
		mu.Unlock()
		called = append(called, 4)
	})
	b.NotifyUnder(&mu, 5, b.Wait(), func() { called = append(called, 5) })
	if !slices.Equal(called, []int{4}) {
		t.Fatalf("after NotifyUnder with a closed and an open channel: called %v, want [4]", called)
	}
	b.Fire()()
	if !slices.Equal(called, []int{4, 5}) {
		t.Fatalf("after Fire: called %v, want [4 5]", called)
	}
}

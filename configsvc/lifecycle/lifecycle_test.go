package lifecycle_test

import (
	"context"
	"errors"
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

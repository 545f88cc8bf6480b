package zkstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeRounds is a sync round that blocks until the test releases it, and
// counts the rounds that started.
type fakeRounds struct {
	started chan int        // the number of each round as it starts
	release chan error      // one value ends one round with that error
	wg      *sync.WaitGroup // the rounds' goroutines
}

func newFakeSyncer(t *testing.T) (*syncer, *fakeRounds) {
	f := &fakeRounds{started: make(chan int, 100), release: make(chan error), wg: &sync.WaitGroup{}}
	n := 0
	var mu sync.Mutex
	y := newSyncer(func() error {
		mu.Lock()
		n++
		f.started <- n
		mu.Unlock()
		return <-f.release
	}, func(fn func()) bool {
		f.wg.Add(1)
		go func() { defer f.wg.Done(); fn() }()
		return true
	}, errors.New("closed"))
	t.Cleanup(f.wg.Wait)
	return y, f
}

func (f *fakeRounds) waitStart(t *testing.T, want int) {
	t.Helper()
	select {
	case n := <-f.started:
		if n != want {
			t.Fatalf("round %d started, want round %d", n, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("round %d did not start", want)
	}
}

// TestSyncerReadWaitsForASyncStartedAfterIt: a reader that arrives while a
// sync is in flight is not released by that sync (it may have started
// before a write the reader must see) but by the next one, which starts
// as soon as the first completes.
func TestSyncerReadWaitsForASyncStartedAfterIt(t *testing.T) {
	y, f := newFakeSyncer(t)
	ctx := context.Background()
	first := make(chan error, 1)
	go func() { first <- y.wait(ctx) }()
	f.waitStart(t, 1)

	second := make(chan error, 1)
	go func() { second <- y.wait(ctx) }()
	// Give the second reader time to join; it must still be waiting after
	// round 1 ends.
	time.Sleep(20 * time.Millisecond)
	f.release <- nil
	if err := <-first; err != nil {
		t.Fatalf("first reader: %v", err)
	}
	f.waitStart(t, 2)
	select {
	case err := <-second:
		t.Fatalf("the second reader returned (%v) before a sync started after it completed", err)
	case <-time.After(20 * time.Millisecond):
	}
	f.release <- nil
	if err := <-second; err != nil {
		t.Fatalf("second reader: %v", err)
	}
}

// TestSyncerCoalesces: readers arriving while a sync is in flight share
// one next sync; no more than one sync is ever in flight.
func TestSyncerCoalesces(t *testing.T) {
	y, f := newFakeSyncer(t)
	ctx := context.Background()
	const readers = 50
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = y.wait(ctx) }()
	f.waitStart(t, 1)
	errs := make(chan error, readers)
	for range readers {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- y.wait(ctx) }()
	}
	time.Sleep(50 * time.Millisecond) // every reader joins round 2
	f.release <- nil
	f.waitStart(t, 2)
	f.release <- errors.New("connection lost")
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil || err.Error() != "connection lost" {
			t.Fatalf("a reader of round 2 got %v, want round 2's error", err)
		}
	}
	if got := y.rounds.Load(); got != 2 {
		t.Fatalf("%d rounds for 1+%d readers, want 2", got, readers)
	}
}

// TestSyncerReaderGivesUpWithItsContext: a reader whose ctx ends stops
// waiting; the round still completes for the others.
func TestSyncerReaderGivesUpWithItsContext(t *testing.T) {
	y, f := newFakeSyncer(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- y.wait(ctx) }()
	f.waitStart(t, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("wait = %v, want context.Canceled", err)
	}
	f.release <- nil
}

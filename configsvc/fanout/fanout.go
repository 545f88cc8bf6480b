package fanout

import (
	"context"
	"sync"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/lifecycle"
)

// DefaultRing is how many events a hub keeps when Options.Ring is zero:
// a subscriber may fall this many events behind the newest before it is
// told to reload.
const DefaultRing = 256

// DefaultLinger is how long a hub outlives its last subscriber when
// Options.Linger is zero, so that a stream that reconnects at once finds
// its watch still running.
const DefaultLinger = 5 * time.Second

// syncWait bounds how long a subscriber joining a running hub waits for
// the hub to show the grays of the head it read at its start before it
// takes the hub's set as its baseline (a later change still arrives as an
// event).
const syncWait = 2 * time.Second

// retryWait is the pause before a catch-up read that failed transiently is
// tried again.
const retryWait = 500 * time.Millisecond

// Options configures New. The zero value is ready to use.
type Options struct {
	// Ring is how many recent events each hub keeps (revisions, links and
	// grays changes, transient errors). Zero means DefaultRing.
	Ring int
	// Linger is how long a hub's upstream watch outlives its last
	// subscriber. Zero means DefaultLinger; negative stops it at once.
	Linger time.Duration
}

// Store is a configsvc.Store whose Watch and WatchInstances are shared:
// one upstream watch per ref however many callers watch it. Every other
// method is the wrapped store's. Store is safe for concurrent use.
//
// Events handed to subscribers are shared between them: their Revision,
// Links, Grays and Instances must not be modified.
type Store struct {
	configsvc.Store

	ring   int
	linger time.Duration
	bg     lifecycle.Group

	mu    sync.Mutex
	hubs  map[configsvc.Ref]*hub
	insts map[string]*instHub
}

var _ configsvc.Store = (*Store)(nil)

// New returns st with shared watches. Close closes st.
func New(st configsvc.Store, opts Options) *Store {
	if opts.Ring <= 0 {
		opts.Ring = DefaultRing
	}
	if opts.Linger == 0 {
		opts.Linger = DefaultLinger
	}
	return &Store{
		Store:  st,
		ring:   opts.Ring,
		linger: opts.Linger,
		hubs:   make(map[configsvc.Ref]*hub),
		insts:  make(map[string]*instHub),
	}
}

// Unwrap returns the wrapped store.
func (s *Store) Unwrap() configsvc.Store { return s.Store }

// Close stops every shared watch (their subscribers' channels close) and
// closes the wrapped store. No goroutine started by Store remains once it
// returns. It is safe to call more than once.
func (s *Store) Close() error {
	s.bg.Stop()
	s.mu.Lock()
	for _, h := range s.hubs {
		h.cancel()
	}
	for _, h := range s.insts {
		h.cancel()
	}
	s.mu.Unlock()
	err := s.Store.Close()
	s.bg.Wait()
	return err
}

// Hubs reports how many shared revision watches and instance watches are
// running: what the metrics of a server show.
func (s *Store) Hubs() (watches, instances int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.hubs), len(s.insts)
}

// send delivers ev unless ctx ends or the store closes first.
func send[E any](ctx context.Context, s *Store, out chan<- E, ev E) bool {
	select {
	case out <- ev:
		return true
	case <-ctx.Done():
	case <-s.bg.Done():
	}
	return false
}

// await waits for wake, ctx's end, the store's close or timer (nil: none).
// It reports false when the caller must return.
func (s *Store) await(ctx context.Context, wake <-chan struct{}, timer <-chan time.Time) bool {
	select {
	case <-wake:
		return true
	case <-timer:
		return true
	case <-ctx.Done():
	case <-s.bg.Done():
	}
	return false
}

// refs counts the subscribers of a hub; guarded by Store.mu.
type refs struct {
	subs int
	idle uint64 // counts the times subs fell to zero
}

// release is called when a hub lost a subscriber; with none left it stops
// the hub (stop, called with s.mu held) after the linger, unless one
// joined meanwhile. The caller holds s.mu.
func (s *Store) release(r *refs, stop func()) {
	r.subs--
	if r.subs > 0 {
		return
	}
	if s.linger < 0 {
		stop()
		return
	}
	r.idle++
	idle := r.idle
	time.AfterFunc(s.linger, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.subs == 0 && r.idle == idle {
			stop()
		}
	})
}

package httpapi

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// credWatch re-checks the credentials of the streams that took their
// connections over (connLoop) on one goroutine per Server, every
// StreamRecheck, instead of every stream waking to re-check its own: an
// idle stream then wakes for its pings only. A credential that no longer
// authenticates (Server.recheck: revoked, expired, session ended) wakes
// its streams, which end with an error event. The goroutine starts with
// the first stream, stops as soon as the last has left or the Server
// closes, and runs in the Server's streamsG.
type credWatch struct {
	s *Server

	mu      sync.Mutex
	creds   map[string]*credStreams // by credential hash
	running bool
	empty   chan struct{} // told when the last stream left
}

// credStreams are the streams of one credential.
type credStreams struct {
	cred credential
	// failed holds the error that ended the credential, nil while it
	// authenticates.
	failed atomic.Pointer[error]
	subs   map[*credSub]struct{} // guarded by credWatch.mu
}

// credSub is one stream's membership of credWatch.
type credSub struct {
	w     *credWatch
	key   string
	entry *credStreams
	wake  func() // called once the credential failed; quick, non-blocking
}

func newCredWatch(s *Server) *credWatch {
	return &credWatch{s: s, creds: map[string]*credStreams{}, empty: make(chan struct{}, 1)}
}

// join adds a stream with credential cred (key: its hash) that wake wakes,
// starting the checker if it is not running.
func (w *credWatch) join(key string, cred credential, wake func()) *credSub {
	w.mu.Lock()
	e := w.creds[key]
	if e == nil {
		e = &credStreams{cred: cred, subs: map[*credSub]struct{}{}}
		w.creds[key] = e
	}
	sub := &credSub{w: w, key: key, entry: e, wake: wake}
	e.subs[sub] = struct{}{}
	start := !w.running
	w.running = true
	w.mu.Unlock()
	if start && !w.s.streamsG.Go(w.run) {
		w.mu.Lock()
		w.running = false
		w.mu.Unlock()
	}
	return sub
}

// err returns why the stream's credential no longer authenticates, or nil.
func (sub *credSub) err() error {
	if p := sub.entry.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// leave removes the stream; safe to call more than once.
func (sub *credSub) leave() {
	w := sub.w
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(sub.entry.subs, sub)
	if len(sub.entry.subs) == 0 && w.creds[sub.key] == sub.entry {
		delete(w.creds, sub.key)
	}
	if len(w.creds) == 0 {
		select {
		case w.empty <- struct{}{}:
		default:
		}
	}
}

// run re-checks every credential with streams each StreamRecheck until
// none is left or the Server closes.
func (w *credWatch) run() {
	ctx := w.s.ctx
	t := time.NewTicker(w.s.cfg.StreamRecheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			w.mu.Lock()
			w.running = false
			w.mu.Unlock()
			return
		case <-w.empty:
			w.mu.Lock()
			done := len(w.creds) == 0
			w.running = !done
			w.mu.Unlock()
			if done {
				return
			}
			continue // a stream joined meanwhile: the round comes at the tick
		case <-t.C:
		}
		w.mu.Lock()
		if len(w.creds) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		entries := make(map[string]*credStreams, len(w.creds))
		for k, e := range w.creds {
			entries[k] = e
		}
		w.mu.Unlock()
		// One store read per credential (Server.recheck), a few at a
		// time: thousands of credentials are read within the interval
		// without one goroutine each.
		var g errgroup.Group
		g.SetLimit(credChecksAtOnce)
		for k, e := range entries {
			if ctx.Err() != nil {
				break
			}
			g.Go(func() error {
				if err := w.s.recheck(ctx, e.cred, k); err != nil {
					w.fail(k, e, err)
				}
				return nil
			})
		}
		_ = g.Wait()
	}
}

// credChecksAtOnce bounds the credential re-checks credWatch runs at once.
const credChecksAtOnce = 16

// fail marks the credential of e (key k) failed with err and wakes its
// streams; the next stream of that credential joins a new entry (its
// request is refused first if the credential still fails).
func (w *credWatch) fail(k string, e *credStreams, err error) {
	e.failed.Store(&err)
	w.mu.Lock()
	wakes := make([]func(), 0, len(e.subs))
	for sub := range e.subs {
		wakes = append(wakes, sub.wake)
	}
	if w.creds[k] == e {
		delete(w.creds, k)
	}
	w.mu.Unlock()
	for _, f := range wakes {
		f()
	}
}

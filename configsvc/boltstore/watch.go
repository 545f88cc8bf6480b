package boltstore

import (
	"context"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
)

// watchBatch bounds how many revisions one read transaction fetches for a
// watcher, so that a far-behind watcher does not hold a transaction long.
const watchBatch = 64

// watchState is what a watcher knows of its ref.
type watchState struct {
	incarnation uint64
	links       []string
	grays       []configsvc.GraySummary // the active grays last reported (gray.go)
	last        int64                   // the last revision delivered
}

// Watch delivers every revision of ref after from, in order, then each new
// one as it is committed, until ctx ends or the store closes; then the
// channel is closed. See configsvc.Store.Watch for the events. The watcher
// reads what it delivers from the file, so a slow receiver delays it but
// never loses a revision.
func (s *Store) Watch(ctx context.Context, ref configsvc.Ref, from int64) <-chan configsvc.Event {
	out := make(chan configsvc.Event)
	from = max(from, 0) // as zkstore: a negative start means from the beginning
	what := fmt.Sprintf("watch %s from %d", ref, from)
	st := watchState{last: from}
	// Read the starting state now, so that a change made after Watch
	// returns is seen as a change.
	var startErr error
	if err := validRef(ref, "watch"); err != nil {
		startErr = err
	} else {
		startErr = s.view(ctx, what, func(tx *bolt.Tx) error {
			b, h, err := refHead(tx, ref)
			if err != nil {
				return err
			}
			st.incarnation = h.Incarnation
			st.grays = h.Grays
			if ref.Kind == configsvc.KindService {
				st.links = keys(b.Bucket(keyLinks))
			}
			return nil
		})
	}
	started := s.bg.Go(func() {
		defer close(out)
		if startErr != nil {
			s.send(ctx, out, configsvc.Event{Err: startErr})
			return
		}
		s.watch(ctx, ref, what, &st, out)
	})
	if !started {
		close(out)
	}
	return out
}

// send delivers ev unless ctx ends or the store closes first.
func (s *Store) send(ctx context.Context, out chan<- configsvc.Event, ev configsvc.Event) bool {
	select {
	case out <- ev:
		return true
	case <-ctx.Done():
	case <-s.bg.Done():
	}
	return false
}

func (s *Store) watch(ctx context.Context, ref configsvc.Ref, what string, st *watchState, out chan<- configsvc.Event) {
	key := refKey(ref)
	for {
		// Take the signal before reading, so that a commit after the read
		// wakes us.
		sig := s.signal(key)
		events, more, err := s.pending(ctx, ref, what, st)
		for _, ev := range events {
			if !s.send(ctx, out, ev) {
				return
			}
		}
		if err != nil {
			s.send(ctx, out, configsvc.Event{Err: err})
			return
		}
		if more {
			continue
		}
		if !s.await(ctx, sig) {
			return
		}
	}
}

// pending reads what a watcher has not seen yet: a links change and up to
// watchBatch revisions. more reports that revisions remain. A non-nil err
// ends the watch (ErrNotFound, ErrCompacted, ErrClosed).
func (s *Store) pending(ctx context.Context, ref configsvc.Ref, what string, st *watchState) (events []configsvc.Event, more bool, err error) {
	err = s.view(ctx, what, func(tx *bolt.Tx) error {
		b, h, err := refHead(tx, ref)
		if err != nil {
			return err
		}
		if h.Incarnation != st.incarnation {
			return fmt.Errorf("%s was deleted: %w", ref, configsvc.ErrNotFound)
		}
		if ref.Kind == configsvc.KindService {
			if links := keys(b.Bucket(keyLinks)); !slices.Equal(links, st.links) {
				st.links = links
				events = append(events, configsvc.Event{LinksChanged: true, Links: slices.Clone(links)})
			}
		}
		if st.last >= h.Revision {
			if ev, ok := graysEvent(st, h); ok {
				events = append(events, ev)
			}
			return nil
		}
		if st.last+1 < h.Oldest {
			return fmt.Errorf("revision %d was pruned (retention keeps %d and later): %w", st.last+1, h.Oldest, configsvc.ErrCompacted)
		}
		end := min(h.Revision, st.last+watchBatch)
		for n := st.last + 1; n <= end; n++ {
			rev, err := readRevision(b, h, n)
			if err != nil {
				return err
			}
			events = append(events, configsvc.Event{Revision: &rev})
		}
		more = end < h.Revision
		if !more {
			// After the revisions up to the head that carries the new set.
			if ev, ok := graysEvent(st, h); ok {
				events = append(events, ev)
			}
		}
		return nil
	})
	if err != nil {
		// Deliver nothing of a failed read; a closed store or ended ctx
		// just ends the watch through the caller's send.
		return nil, false, err
	}
	// The caller sends every event or ends the watch at the first failed
	// send, so the batch counts as delivered.
	for _, ev := range events {
		if ev.Revision != nil {
			st.last = ev.Revision.Number
		}
	}
	return events, more, nil
}

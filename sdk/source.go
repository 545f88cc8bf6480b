package sdk

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// source is what the client needs of a transport: the state of a service or
// group, its watch, and an instance registration. storeSource (ZooKeeper and
// in-process stores) and httpSource (the admin server) implement it.
type source interface {
	// load returns the head state of ref: revision, file contents and, for a
	// service, its linked groups.
	load(ctx context.Context, ref configsvc.Ref) (loaded, error)
	// watch follows configsvc.Store.Watch's contract.
	watch(ctx context.Context, ref configsvc.Ref, from int64) <-chan configsvc.Event
	// register follows configsvc.Store.Register's contract.
	register(ctx context.Context, inst configsvc.Instance) (configsvc.Lease, error)
	// transport names the transport for logs and metrics.
	transport() string
	// close releases what the source owns.
	close() error
}

// linkReader is implemented by sources that can read a service's links
// cheaply.
type linkReader interface {
	links(ctx context.Context, ref configsvc.Ref) ([]string, error)
}

// loaded is the state of one service or group at one revision.
type loaded struct {
	revision int64
	files    map[string][]byte
	links    []string
}

// storeSource reads a configsvc.Store: a zkstore.Store the client opened, or
// one handed over in Config.Store.
type storeSource struct {
	store configsvc.Store
	name  string
	owned bool // close the store with the source
}

func (s *storeSource) transport() string { return s.name }

func (s *storeSource) load(ctx context.Context, ref configsvc.Ref) (loaded, error) {
	// Head and Snapshot are two reads; a publish in between moves the head
	// past the snapshot, which the watch from the snapshot's revision then
	// delivers. Links are re-read by the client after its watch starts.
	head, err := s.store.Head(ctx, ref)
	if err != nil {
		return loaded{}, err
	}
	snap, err := s.store.Snapshot(ctx, ref, head.Revision)
	if err != nil {
		return loaded{}, err
	}
	files := snap.Files
	if files == nil {
		files = map[string][]byte{}
	}
	return loaded{revision: snap.Revision, files: files, links: head.Links}, nil
}

// links returns the groups the service links to now (one head read). The
// client calls it right after starting a watch: a link change between its
// snapshot and the watch's first head read would otherwise go unnoticed.
func (s *storeSource) links(ctx context.Context, ref configsvc.Ref) ([]string, error) {
	head, err := s.store.Head(ctx, ref)
	if err != nil {
		return nil, err
	}
	return head.Links, nil
}

func (s *storeSource) watch(ctx context.Context, ref configsvc.Ref, from int64) <-chan configsvc.Event {
	return s.store.Watch(ctx, ref, from)
}

func (s *storeSource) register(ctx context.Context, inst configsvc.Instance) (configsvc.Lease, error) {
	return s.store.Register(ctx, inst)
}

func (s *storeSource) close() error {
	if s.owned {
		return s.store.Close()
	}
	return nil
}

// backoff is a jittered exponential backoff ("full jitter"): the n-th wait
// is uniform in [min, min(max, min·2ⁿ)].
type backoff struct {
	min, max time.Duration
	n        int
}

func (b *backoff) next() time.Duration {
	hi := b.min << min(b.n, 20)
	if hi > b.max || hi <= 0 {
		hi = b.max
	}
	b.n++
	return b.min + rand.N(hi-b.min+1)
}

func (b *backoff) reset() { b.n = 0 }

// isUnavailable reports whether err means the store could not be reached
// (rather than a definite answer such as not found).
func isUnavailable(err error) bool {
	return errors.Is(err, configsvc.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

func refString(ref configsvc.Ref) string { return ref.String() }

package sdk

import (
	"context"
	"errors"
	"log/slog"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// backend is what the client reads of a transport: the head and content of
// a service or group, its grays' content, its watch, and an instance
// registration, with the contracts of configsvc.Store. A configsvc.Store (ZooKeeper, or one handed
// over in Config.Store) and an *api.Client (the admin server's API and
// event stream) both provide it, so one source serves every transport.
type backend interface {
	Head(ctx context.Context, ref configsvc.Ref) (configsvc.Head, error)
	Snapshot(ctx context.Context, ref configsvc.Ref, rev int64) (configsvc.Snapshot, error)
	Watch(ctx context.Context, ref configsvc.Ref, from int64, opts ...configsvc.WatchOption) <-chan configsvc.Event
	Gray(ctx context.Context, ref configsvc.Ref, id string) (configsvc.Gray, error)
	Register(ctx context.Context, inst configsvc.Instance) (configsvc.Lease, error)
}

var (
	_ backend = configsvc.Store(nil)
	_ backend = (*api.Client)(nil)
)

// loaded is the state of one service or group at one revision: main's
// files and, once the client filled them in (Client.loadFrom), the grays
// active at that revision and the ones this instance is in.
type loaded struct {
	revision int64
	id       configsvc.Identity // identity of revision
	files    map[string][]byte
	links    []string
	grays    graySet
}

// state returns l as the client's state of its ref.
func (l *loaded) state() *refState {
	return &refState{rev: l.revision, id: l.id, files: l.files, synced: true, grays: l.grays.summaries, in: l.grays.in}
}

// transport is how the client reaches the store: a backend, named for logs
// and metrics, with what closing it releases.
type transport struct {
	store backend
	name  string       // "zookeeper", "http" or "store"
	close func() error // releases what the source owns; nil: nothing
}

// dialHTTP returns the HTTP transport: an api.Client on cfg.Servers, in
// fail-over order.
func dialHTTP(cfg Config, log *slog.Logger) (*transport, error) {
	c, err := api.New(api.Config{
		Servers: cfg.Servers, Token: cfg.Token, HTTPClient: cfg.HTTPClient,
		RetryMin: cfg.RetryMin, RetryMax: cfg.RetryMax, Heartbeat: cfg.HeartbeatInterval,
		UserAgent: "sluice-sdk", Logger: log,
		SecretEnvelopes: true, // secret files stay envelopes in the client and its cache
	})
	if err != nil {
		return nil, err
	}
	return &transport{store: c, name: "http", close: c.Close}, nil
}

// load returns the head state of ref: revision, file contents, the
// summaries of its active grays and, for a service, its linked groups.
func (s *transport) load(ctx context.Context, ref configsvc.Ref) (loaded, error) {
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
	id := snap.Identity()
	if id.Generation == "" {
		id.Generation = head.Generation
	}
	return loaded{revision: snap.Revision, id: id, files: files, links: head.Links, grays: graySet{summaries: head.Grays}}, nil
}

// release releases what the transport owns.
func (s *transport) release() error {
	if s.close == nil {
		return nil
	}
	return s.close()
}

// isUnavailable reports whether err means the store could not be reached
// (rather than a definite answer such as not found).
func isUnavailable(err error) bool {
	return errors.Is(err, configsvc.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

func refString(ref configsvc.Ref) string { return ref.String() }

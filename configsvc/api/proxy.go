package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
)

// PinsEvent is one step of WatchPins: the full list of pins the caller may
// see (PinsData), or an error.
type PinsEvent struct {
	Pins []PinRecord
	// Err reports a broken stream (a *StreamError, matching
	// configsvc.ErrUnavailable; the watch goes on) or an answer that ends
	// the watch (401, 403 …).
	Err error
}

// WatchPins follows the pins the caller may see (admins and proxies only)
// over GET /v1/pins/watch: the full list now and after every change, until
// ctx ends; then the channel is closed. Only the newest list matters.
// Broken streams and errors are reported and handled as by
// WatchInstances.
func (c *Client) WatchPins(ctx context.Context) <-chan PinsEvent {
	ch := make(chan PinsEvent)
	go func() {
		defer close(ch)
		emit := sender(ctx, ch)
		req := func() request {
			return request{method: http.MethodGet, path: "/v1/pins/watch", accept: "text/event-stream"}
		}
		handle := func(ev Event) (handled, error) {
			switch ev.Name {
			case EventPins:
				var d PinsData
				if err := json.Unmarshal(ev.Data, &d); err != nil {
					return handled{}, fmt.Errorf("decoding a %s event: %w", ev.Name, err)
				}
				return handled{delivered: true, end: !emit(PinsEvent{Pins: d.Pins})}, nil
			case EventError, legacyEventError:
				err, _ := eventError(ev.Data)
				return handled{end: !emit(PinsEvent{Err: err})}, nil
			}
			return handled{}, nil
		}
		c.follow(ctx, req, handle, func(err error) bool { return emit(PinsEvent{Err: err}) })
	}()
	return ch
}

func proxyStatePath(id string) string { return "/v1/routes/proxies/" + url.PathEscape(id) }

// PutProxyState publishes st, a proxy's live state, under st.ID for GET
// /v1/routes (role proxy or admin). A proxy publishes under its own
// instance id of sluice-system: an id registered there by another token is
// refused (ErrForbidden). Sent without an Idempotency-Key: publishing the
// same state twice is harmless.
func (c *Client) PutProxyState(ctx context.Context, st ProxyState) error {
	_, err := c.doJSON(ctx, request{method: http.MethodPut, path: proxyStatePath(st.ID), retry: true, noKey: true}, st, nil)
	return err
}

// DeleteProxyState removes the state published under id (as PutProxyState
// may). ErrNotFound when there is none.
func (c *Client) DeleteProxyState(ctx context.Context, id string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: proxyStatePath(id), retry: true, noKey: true})
	return err
}

// ProxySource is what a proxy (router/proxyserver.Source, Registrar) reads
// and writes through the admin API instead of a store, so that a proxy
// needs a token with the proxy role rather than store credentials: the
// route file's snapshot and watch, instance watches and its registration
// go to the Client (with its fail-over across servers and its resuming
// watches); pins come from a copy Run keeps of the pins the token may see
// (GET /v1/pins/watch), so that they resolve while every server is down;
// the proxy's state is published with PutProxyState. Its Records hold only
// those two collections. It is safe for concurrent use; it owns nothing
// (close the Client yourself).
type ProxySource struct {
	c *Client

	mu     sync.Mutex
	pins   map[string][]byte // record key → configsvc.Pin JSON; nil before the first list
	loaded chan struct{}     // closed when the first list arrived
}

// NewProxySource returns a ProxySource on c. It starts nothing: run Run to
// follow the pins.
func NewProxySource(c *Client) *ProxySource {
	return &ProxySource{c: c, loaded: make(chan struct{})}
}

// Snapshot is Client.Snapshot.
func (s *ProxySource) Snapshot(ctx context.Context, ref configsvc.Ref, rev int64) (configsvc.Snapshot, error) {
	return s.c.Snapshot(ctx, ref, rev)
}

// Watch is Client.Watch.
func (s *ProxySource) Watch(ctx context.Context, ref configsvc.Ref, from int64, opts ...configsvc.WatchOption) <-chan configsvc.Event {
	return s.c.Watch(ctx, ref, from, opts...)
}

// WatchInstances is Client.WatchInstances.
func (s *ProxySource) WatchInstances(ctx context.Context, svc string) <-chan configsvc.InstancesEvent {
	return s.c.WatchInstances(ctx, svc)
}

// Create creates ref, empty, when it does not exist yet (Client.Create):
// a proxy creates sluice-system to watch it before the first routes are
// published, which its proxy role allows. Creating one that exists is not
// an error.
func (s *ProxySource) Create(ctx context.Context, ref configsvc.Ref) error {
	_, _, err := s.c.Create(ctx, ref)
	return err
}

// Register is Client.Register.
func (s *ProxySource) Register(ctx context.Context, inst configsvc.Instance) (configsvc.Lease, error) {
	return s.c.Register(ctx, inst)
}

// Ping checks that an admin server answers and reaches its store
// (Client.Ready).
func (s *ProxySource) Ping(ctx context.Context) error { return s.c.Ready(ctx) }

// Loaded is closed once Run received the first list of pins.
func (s *ProxySource) Loaded() <-chan struct{} { return s.loaded }

// Run follows the pins the token may see until ctx ends, then returns nil;
// the copy it keeps answers Records().Get("pins", key). While no server
// answers, the last list stays in force. An answer that ends the watch
// (the token revoked, or without the proxy role: 401, 403) is returned.
func (s *ProxySource) Run(ctx context.Context) error {
	first := true
	for ev := range s.c.WatchPins(ctx) {
		if ev.Err != nil {
			if !errors.Is(ev.Err, configsvc.ErrUnavailable) {
				return fmt.Errorf("api: watch pins: %w", ev.Err)
			}
			continue
		}
		m := make(map[string][]byte, len(ev.Pins))
		for _, p := range ev.Pins {
			b, err := json.Marshal(p.Pin)
			if err != nil {
				continue
			}
			m[p.Hash] = b
		}
		s.mu.Lock()
		s.pins = m
		s.mu.Unlock()
		if first {
			close(s.loaded)
			first = false
		}
	}
	return nil
}

// Records returns the proxy's records: Get of access.PinsCollection
// (from Run's copy; configsvc.ErrUnavailable before its first list), and
// Put and Delete of configsvc.ProxyStateCollection (through PutProxyState
// and DeleteProxyState). Anything else is refused with
// configsvc.ErrInvalid.
func (s *ProxySource) Records() configsvc.RecordStore { return proxyRecords{s} }

type proxyRecords struct{ s *ProxySource }

var _ configsvc.RecordStore = proxyRecords{}

func unsupported(op, collection string) error {
	return fmt.Errorf("api: %s records of %q: not available to a proxy through the admin API: %w", op, collection, configsvc.ErrInvalid)
}

func (r proxyRecords) Get(ctx context.Context, collection, id string) ([]byte, error) {
	if collection != access.PinsCollection {
		return nil, unsupported("get", collection)
	}
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if r.s.pins == nil {
		return nil, fmt.Errorf("api: pins not received from the admin server yet: %w", configsvc.ErrUnavailable)
	}
	b, ok := r.s.pins[id]
	if !ok {
		return nil, fmt.Errorf("api: pin %.12s: %w", id, configsvc.ErrNotFound)
	}
	return b, nil
}

func (r proxyRecords) Put(ctx context.Context, collection, id string, data []byte) error {
	if collection != configsvc.ProxyStateCollection {
		return unsupported("put", collection)
	}
	var st ProxyState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("api: proxy state %s: %v: %w", id, err, configsvc.ErrInvalid)
	}
	st.ID = id
	return r.s.c.PutProxyState(ctx, st)
}

func (r proxyRecords) Delete(ctx context.Context, collection, id string) error {
	if collection != configsvc.ProxyStateCollection {
		return unsupported("delete", collection)
	}
	return r.s.c.DeleteProxyState(ctx, id)
}

func (r proxyRecords) Create(ctx context.Context, collection, id string, data []byte) error {
	return unsupported("create", collection)
}

func (r proxyRecords) List(ctx context.Context, collection string) ([]configsvc.Record, error) {
	return nil, unsupported("list", collection)
}

func (r proxyRecords) Append(ctx context.Context, collection string, data []byte, keep int) (int64, error) {
	return 0, unsupported("append", collection)
}

func (r proxyRecords) Scan(ctx context.Context, collection string, before int64, limit int) ([]configsvc.Record, error) {
	return nil, unsupported("scan", collection)
}

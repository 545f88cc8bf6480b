package sdk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/lifecycle"
)

// httpSource reads a service through the admin server: the snapshot
// endpoint, the SSE watch stream, and instance registration by PUT
// heartbeats (docs/architecture.md, "Server ↔ SDK").
type httpSource struct {
	bases     []string      // the servers, in fail-over order
	cur       atomic.Uint32 // index into bases of the server in use
	token     string
	client    *http.Client
	log       *slog.Logger
	retryMin  time.Duration
	retryMax  time.Duration
	heartbeat time.Duration
	// idle is how long the watch stream may stay silent before it is
	// considered dead; the server sends a ping every 15 s.
	idle time.Duration
	// ownClient is set when the SDK created client and releases it on close.
	ownClient bool
}

func newHTTPSource(cfg Config, log *slog.Logger) *httpSource {
	s := &httpSource{
		bases: cfg.Servers, token: cfg.Token, client: cfg.HTTPClient, log: log,
		retryMin: cfg.RetryMin, retryMax: cfg.RetryMax, heartbeat: cfg.HeartbeatInterval,
		idle: 45 * time.Second,
	}
	if s.client == nil {
		s.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		s.ownClient = true
	}
	return s
}

func (s *httpSource) transport() string { return "http" }

func (s *httpSource) close() error {
	if s.ownClient {
		s.client.CloseIdleConnections()
	}
	return nil
}

func (s *httpSource) refPath(ref configsvc.Ref) string {
	if ref.Kind == configsvc.KindGroup {
		return "/v1/shared/" + url.PathEscape(ref.Name)
	}
	return "/v1/services/" + url.PathEscape(ref.Name)
}

// call sends one request to the server in use. When that server cannot be
// reached or answers 5xx (ErrUnavailable), it tries the next ones in order,
// and the first that answers becomes the server in use. header, when set,
// is added to each attempt. On success the caller closes the body.
func (s *httpSource) call(ctx context.Context, method, path string, body []byte, header http.Header, what string) (*http.Response, error) {
	start := int(s.cur.Load())
	var lastErr error
	for i := range s.bases {
		idx := (start + i) % len(s.bases)
		req, err := s.newRequest(ctx, s.bases[idx]+path, method, body)
		if err != nil {
			return nil, err
		}
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := s.do(req, what)
		if err == nil {
			if idx != start {
				s.cur.Store(uint32(idx))
				s.log.Info("sdk: switched admin server", "server", s.bases[idx], "after", s.bases[start])
			}
			return resp, nil
		}
		lastErr = err
		if !errors.Is(err, configsvc.ErrUnavailable) || ctx.Err() != nil {
			return nil, err
		}
	}
	return nil, lastErr
}

func (s *httpSource) newRequest(ctx context.Context, url, method string, body []byte) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return nil, err
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// do sends req and maps transport failures and error statuses to configsvc
// sentinels. On success the caller closes the body.
func (s *httpSource) do(req *http.Request, what string) (*http.Response, error) {
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sdk: %s: %w: %w", what, configsvc.ErrUnavailable, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, fmt.Errorf("sdk: %s: %w", what, statusError(resp))
}

// apiError is the server's error body.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// statusError maps an error response to the matching configsvc sentinel.
func statusError(resp *http.Response) error {
	var body apiError
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	msg := body.Error.Message
	if msg == "" {
		msg = resp.Status
	}
	var sentinel error
	switch {
	case body.Error.Code == "compacted":
		sentinel = configsvc.ErrCompacted
	case resp.StatusCode == http.StatusNotFound:
		sentinel = configsvc.ErrNotFound
	case resp.StatusCode == http.StatusConflict:
		sentinel = configsvc.ErrConflict
	case resp.StatusCode == http.StatusGone:
		sentinel = configsvc.ErrCompacted
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnprocessableEntity:
		sentinel = configsvc.ErrInvalid
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		sentinel = configsvc.ErrUnavailable
	default:
		return fmt.Errorf("server answered %s: %s", resp.Status, msg)
	}
	return fmt.Errorf("server answered %s: %s: %w", resp.Status, msg, sentinel)
}

// snapshotBody is GET …/snapshot's answer.
type snapshotBody struct {
	Revision int64             `json:"revision"`
	Files    map[string]string `json:"files"`
	Links    []string          `json:"links"`
}

func (s *httpSource) load(ctx context.Context, ref configsvc.Ref) (loaded, error) {
	resp, err := s.call(ctx, http.MethodGet, s.refPath(ref)+"/snapshot", nil, nil, "snapshot "+ref.String())
	if err != nil {
		return loaded{}, err
	}
	defer resp.Body.Close()
	var body snapshotBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return loaded{}, fmt.Errorf("sdk: snapshot %s: decoding: %w: %w", ref, configsvc.ErrUnavailable, err)
	}
	files := make(map[string][]byte, len(body.Files))
	for name, content := range body.Files {
		files[name] = []byte(content)
	}
	return loaded{revision: body.Revision, files: files, links: body.Links}, nil
}

// sseRevision is the data of an "event: revision".
type sseRevision struct {
	Revision   int64     `json:"revision"`
	Author     string    `json:"author"`
	Time       time.Time `json:"time"`
	Message    string    `json:"message"`
	RollbackOf int64     `json:"rollback_of"`
	Changes    []struct {
		File    string `json:"file"`
		Content string `json:"content"`
		Delete  bool   `json:"delete"`
	} `json:"changes"`
}

// watch follows the SSE stream of ref from revision from, reconnecting with
// jittered backoff and since= the last revision delivered, until ctx ends or
// the server reports compacted or not_found.
func (s *httpSource) watch(ctx context.Context, ref configsvc.Ref, from int64) <-chan configsvc.Event {
	ch := make(chan configsvc.Event)
	go func() {
		defer close(ch)
		emit := func(ev configsvc.Event) bool {
			select {
			case ch <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		bo := backoff{min: s.retryMin, max: s.retryMax}
		last := from
		for ctx.Err() == nil {
			var final bool
			var err error
			delivered := false
			last, delivered, final, err = s.stream(ctx, ref, last, emit)
			if ctx.Err() != nil {
				return
			}
			if final {
				emit(configsvc.Event{Err: err})
				return
			}
			if delivered {
				bo.reset()
			}
			if err == nil {
				err = errors.New("stream ended")
			}
			if !errors.Is(err, configsvc.ErrUnavailable) {
				err = fmt.Errorf("%w: %w", configsvc.ErrUnavailable, err)
			}
			if !emit(configsvc.Event{Err: fmt.Errorf("sdk: watch %s: %w", ref, err)}) {
				return
			}
			if lifecycle.Sleep(ctx, bo.next()) != nil {
				return
			}
		}
	}()
	return ch
}

// stream runs one SSE connection. It returns the last revision delivered,
// whether anything was delivered, whether the watch must end (err then
// says why), and the error that ended the stream.
func (s *httpSource) stream(ctx context.Context, ref configsvc.Ref, since int64, emit func(configsvc.Event) bool) (int64, bool, bool, error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hdr := http.Header{"Accept": {"text/event-stream"}, "Last-Event-ID": {strconv.FormatInt(since, 10)}}
	resp, err := s.call(sctx, http.MethodGet, s.refPath(ref)+"/watch?since="+strconv.FormatInt(since, 10), nil, hdr, "watch "+ref.String())
	if err != nil {
		// Only a server that cannot be reached is retried here; a definite
		// answer (not found, compacted, refused) ends the watch and the
		// client reloads the snapshot.
		return since, false, !errors.Is(err, configsvc.ErrUnavailable), err
	}
	defer resp.Body.Close()

	idle := time.AfterFunc(s.idle, cancel)
	defer idle.Stop()
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	var event string
	var data bytes.Buffer
	delivered := false
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long data line (a large file): collect it whole.
			rest, err2 := r.ReadBytes('\n')
			line = append(bytes.Clone(line), rest...)
			err = err2
		}
		if err != nil {
			if sctx.Err() != nil && ctx.Err() == nil {
				err = fmt.Errorf("no data for %s", s.idle)
			}
			return since, delivered, false, err
		}
		idle.Reset(s.idle)
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if data.Len() > 0 || event != "" {
				ev, final, err := decodeSSE(event, data.Bytes())
				event = ""
				data.Reset()
				if err != nil {
					return since, delivered, false, fmt.Errorf("%w: %w", configsvc.ErrUnavailable, err)
				}
				if final {
					return since, delivered, true, ev.Err
				}
				if ev.Revision != nil {
					if ev.Revision.Number <= since {
						continue
					}
					since = ev.Revision.Number
					delivered = true
				}
				if (ev.Revision != nil || ev.LinksChanged || ev.Err != nil) && !emit(ev) {
					return since, delivered, false, ctx.Err()
				}
			}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "event":
			event = string(value)
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.Write(value)
		}
	}
}

// decodeSSE turns one SSE event into a watch event; final reports an error
// that ends the watch.
func decodeSSE(event string, data []byte) (ev configsvc.Event, final bool, err error) {
	switch event {
	case "revision", "":
		var r sseRevision
		if err := json.Unmarshal(data, &r); err != nil {
			return ev, false, fmt.Errorf("decoding revision event: %w", err)
		}
		rev := &configsvc.Revision{Number: r.Revision, Author: r.Author, Time: r.Time, Message: r.Message, RollbackOf: r.RollbackOf}
		for _, c := range r.Changes {
			ch := configsvc.Change{File: c.File, Delete: c.Delete}
			if !c.Delete {
				ch.Content = []byte(c.Content)
			}
			rev.Changes = append(rev.Changes, ch)
		}
		ev.Revision = rev
	case "links":
		var l struct {
			Links []string `json:"links"`
		}
		if err := json.Unmarshal(data, &l); err != nil {
			return ev, false, fmt.Errorf("decoding links event: %w", err)
		}
		ev.LinksChanged, ev.Links = true, l.Links
	case "error":
		var e apiError
		_ = json.Unmarshal(data, &e)
		msg := "server: " + e.Error.Code + ": " + e.Error.Message
		switch e.Error.Code {
		case "compacted":
			ev.Err = fmt.Errorf("%s: %w", msg, configsvc.ErrCompacted)
			return ev, true, nil
		case "not_found":
			ev.Err = fmt.Errorf("%s: %w", msg, configsvc.ErrNotFound)
			return ev, true, nil
		default:
			ev.Err = fmt.Errorf("%s: %w", msg, configsvc.ErrUnavailable)
		}
	}
	return ev, false, nil
}

// register PUTs the instance and keeps refreshing it every heartbeat
// interval until the lease is closed.
func (s *httpSource) register(ctx context.Context, inst configsvc.Instance) (configsvc.Lease, error) {
	l := &httpLease{s: s, inst: inst, done: make(chan struct{})}
	if err := l.put(ctx); err != nil {
		return nil, err
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.heartbeats()
	return l, nil
}

type httpLease struct {
	s    *httpSource
	mu   sync.Mutex
	inst configsvc.Instance

	ctx       context.Context // ends when the lease closes
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

func (l *httpLease) path() string {
	return "/v1/services/" + url.PathEscape(l.inst.Service) + "/instances/" + url.PathEscape(l.inst.ID)
}

func (l *httpLease) put(ctx context.Context) error {
	l.mu.Lock()
	body, err := json.Marshal(l.inst)
	l.mu.Unlock()
	if err != nil {
		return err
	}
	resp, err := l.s.call(ctx, http.MethodPut, l.path(), body, nil, "register instance "+l.inst.ID)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.Body.Close()
}

func (l *httpLease) heartbeats() {
	defer close(l.done)
	t := time.NewTicker(l.s.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(l.ctx, l.s.heartbeat)
		if err := l.put(ctx); err != nil && l.ctx.Err() == nil {
			l.s.log.Warn("sdk: instance heartbeat failed", "instance", l.inst.ID, "err", err)
		}
		cancel()
	}
}

// Update replaces the registered record and sends it at once.
func (l *httpLease) Update(ctx context.Context, inst configsvc.Instance) error {
	l.mu.Lock()
	l.inst = inst
	l.mu.Unlock()
	return l.put(ctx)
}

// Close stops the heartbeats and DELETEs the registration.
func (l *httpLease) Close() error {
	l.closeOnce.Do(func() {
		l.cancel()
		<-l.done
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		resp, err := l.s.call(ctx, http.MethodDelete, l.path(), nil, nil, "deregister instance "+l.inst.ID)
		if err != nil {
			if errors.Is(err, configsvc.ErrNotFound) {
				return
			}
			l.closeErr = err
			return
		}
		l.closeErr = resp.Body.Close()
	})
	return l.closeErr
}

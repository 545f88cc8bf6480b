package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// Watch follows the revisions of ref after revision from over the server's
// event stream, with configsvc.Store.Watch's contract: every revision, in
// order and without gaps or repeats, then every new one, until ctx ends;
// then the channel is closed. A stream that breaks or cannot be opened
// (server unreachable, 429, 5xx, silent for Config.IdleTimeout) is reported
// as an Event whose Err is a *StreamError (matching
// configsvc.ErrUnavailable) and reopened after its Retry, on the next
// server when the one in use is gone, resuming after the last revision
// sent. A stream-error event (EventError) is sent as an *Error: compacted
// (configsvc.ErrCompacted) and not_found (configsvc.ErrNotFound) end the
// watch, others inform (they match configsvc.ErrUnavailable). Any other
// answer to the stream's request (401, 403, 404 …) is sent as its *Error
// and ends the watch. A service's link changes arrive as events with
// LinksChanged; the active grays arrive as an event with GraysChanged
// each time a stream opens (after the revisions up to the head the
// server read) and after every change. A slow receiver delays the
// stream; it never loses events.
func (c *Client) Watch(ctx context.Context, ref configsvc.Ref, from int64) <-chan configsvc.Event {
	ch := make(chan configsvc.Event)
	go func() {
		defer close(ch)
		emit := sender(ctx, ch)
		last := from
		req := func() request {
			since := strconv.FormatInt(last, 10)
			return request{method: http.MethodGet, path: refPath(ref, "watch"), query: url.Values{SinceParam: {since}},
				header: http.Header{LastEventIDHeader: {since}}, accept: "text/event-stream"}
		}
		handle := func(ev Event) (handled, error) {
			switch ev.Name {
			case EventRevision, "message":
				var r Revision
				if err := json.Unmarshal(ev.Data, &r); err != nil {
					return handled{}, fmt.Errorf("decoding a %s event: %w", ev.Name, err)
				}
				if r.Revision <= last {
					return handled{}, nil
				}
				last = r.Revision
				rev := r.Domain()
				return handled{delivered: true, end: !emit(configsvc.Event{Revision: &rev})}, nil
			case EventLinks:
				var l LinksData
				if err := json.Unmarshal(ev.Data, &l); err != nil {
					return handled{}, fmt.Errorf("decoding a %s event: %w", ev.Name, err)
				}
				return handled{delivered: true, end: !emit(configsvc.Event{LinksChanged: true, Links: l.Links})}, nil
			case EventGrays:
				var g GraysData
				if err := json.Unmarshal(ev.Data, &g); err != nil {
					return handled{}, fmt.Errorf("decoding a %s event: %w", ev.Name, err)
				}
				return handled{delivered: true, end: !emit(configsvc.Event{GraysChanged: true, Grays: g.Grays})}, nil
			case EventError, legacyEventError:
				err, final := eventError(ev.Data)
				return handled{end: !emit(configsvc.Event{Err: err}) || final}, nil
			}
			return handled{}, nil
		}
		c.follow(ctx, req, handle, func(err error) bool { return emit(configsvc.Event{Err: err}) })
	}()
	return ch
}

// WatchInstances follows the live instance list of service svc: the full
// list now and after every change, until ctx ends; then the channel is
// closed. Only the newest list matters. Broken streams and errors are
// reported and handled as by Watch (a stream-error event only informs).
func (c *Client) WatchInstances(ctx context.Context, svc string) <-chan configsvc.InstancesEvent {
	ch := make(chan configsvc.InstancesEvent)
	go func() {
		defer close(ch)
		emit := sender(ctx, ch)
		req := func() request {
			return request{method: http.MethodGet, path: refPath(configsvc.Service(svc), "instances", "watch"), accept: "text/event-stream"}
		}
		handle := func(ev Event) (handled, error) {
			switch ev.Name {
			case EventInstances:
				var d InstancesData
				if err := json.Unmarshal(ev.Data, &d); err != nil {
					return handled{}, fmt.Errorf("decoding an %s event: %w", ev.Name, err)
				}
				return handled{delivered: true, end: !emit(configsvc.InstancesEvent{Instances: d.Instances})}, nil
			case EventError, legacyEventError:
				err, _ := eventError(ev.Data)
				return handled{end: !emit(configsvc.InstancesEvent{Err: err})}, nil
			}
			return handled{}, nil
		}
		c.follow(ctx, req, handle, func(err error) bool { return emit(configsvc.InstancesEvent{Err: err}) })
	}()
	return ch
}

// sender returns a function that sends an event on ch, or reports false
// when ctx ends first.
func sender[E any](ctx context.Context, ch chan<- E) func(E) bool {
	return func(ev E) bool {
		select {
		case ch <- ev:
			return true
		case <-ctx.Done():
			return false
		}
	}
}

// eventError decodes the data of a stream-error event. final reports the codes
// that end a revision stream (compacted, not_found); any other error is
// made to match configsvc.ErrUnavailable, as it only informs.
func eventError(data []byte) (err error, final bool) {
	var b ErrorBody
	if json.Unmarshal(data, &b) != nil || b.Error == nil {
		b.Error = &Error{Code: CodeUnavailable, Message: string(data)}
	}
	e := b.Error
	switch {
	case errors.Is(e, configsvc.ErrCompacted), errors.Is(e, configsvc.ErrNotFound):
		return e, true
	case errors.Is(e, configsvc.ErrUnavailable):
		return e, false
	}
	return fmt.Errorf("%w (%w)", e, configsvc.ErrUnavailable), false
}

// follow runs an event stream until ctx ends or handle ends it: it opens
// req() on the servers in fail-over order, hands each event to handle, and
// after a break reports a *StreamError through emitErr and reopens it after
// a backoff (reset by every event handle reports delivered). An answer to
// the request that is not retried (401, 403, 404 …) is reported and ends
// it.
func (c *Client) follow(ctx context.Context, req func() request, handle func(Event) (handled, error), emitErr func(error) bool) {
	bo := Backoff{Min: c.cfg.RetryMin, Max: c.cfg.RetryMax}
	for ctx.Err() == nil {
		run, err := c.streamOnce(ctx, req(), handle)
		if ctx.Err() != nil || run.end {
			return
		}
		if run.delivered {
			bo.Reset()
		}
		if !run.opened && !errors.Is(err, configsvc.ErrUnavailable) {
			emitErr(err)
			return
		}
		d := bo.Next()
		if !emitErr(&StreamError{Err: err, Opened: run.opened, Retry: d}) || !sleep(ctx, d) {
			return
		}
	}
}

// handled is what a watch's handler did with one event.
type handled struct {
	delivered bool // the event reached the receiver
	end       bool // the watch is over (the receiver left, or a final error)
}

// streamRun is how one stream of a watch went.
type streamRun struct {
	opened    bool // the server accepted the stream
	delivered bool // the handler delivered at least one event
	end       bool // the handler ended the watch
}

// streamOnce runs one stream of req, handing each event to handle. err
// says why the stream ended, unless the handler ended the watch.
func (c *Client) streamOnce(ctx context.Context, req request, handle func(Event) (handled, error)) (run streamRun, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := c.openStream(sctx, req)
	if err != nil {
		return run, err
	}
	run.opened = true
	defer resp.Body.Close()
	idle := time.AfterFunc(c.cfg.IdleTimeout, cancel)
	defer idle.Stop()
	dec := NewDecoder(&idleReader{r: resp.Body, t: idle, d: c.cfg.IdleTimeout})
	for {
		ev, err := dec.Next()
		switch {
		case err == nil:
		case ctx.Err() == nil && sctx.Err() != nil:
			return run, fmt.Errorf("no data for %s", c.cfg.IdleTimeout)
		case errors.Is(err, io.EOF):
			return run, errStreamEnded
		default:
			return run, err
		}
		if ev.Comment {
			continue
		}
		h, err := handle(ev)
		run.delivered = run.delivered || h.delivered
		if h.end || err != nil {
			run.end = h.end
			return run, err
		}
	}
}

// openStream sends req on the servers in fail-over order and returns the
// 2xx answer; Config.Timeout bounds the wait for it, not the stream. The
// stream ends with ctx.
func (c *Client) openStream(ctx context.Context, req request) (*http.Response, error) {
	var resp *http.Response
	err := c.each(ctx, true, func(base string) error {
		hr, err := c.newRequest(ctx, base, req)
		if err != nil {
			return err
		}
		actx, cancel := context.WithCancel(ctx)
		timer := time.AfterFunc(c.cfg.Timeout, cancel)
		r, err := c.hc.Do(hr.WithContext(actx))
		if !timer.Stop() {
			if err == nil {
				r.Body.Close()
			}
			err = fmt.Errorf("no answer in %s: %w", c.cfg.Timeout, context.DeadlineExceeded)
		}
		if err != nil {
			cancel()
			return &ConnError{Method: req.method, Path: req.path, Server: base, Err: err}
		}
		if r.StatusCode/100 != 2 {
			body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			r.Body.Close()
			cancel()
			return parseError(r, body)
		}
		r.Body = &cancelOnClose{ReadCloser: r.Body, cancel: cancel}
		resp = r
		return nil
	})
	return resp, err
}

// cancelOnClose ends a stream's request context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// idleReader re-arms t for d after every read that returned data.
type idleReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.t.Reset(r.d)
	}
	return n, err
}

// Backoff is a jittered exponential backoff ("full jitter"): the n-th
// delay is uniform in [Min, min(Max, Min·2ⁿ)]. Watches wait it between
// attempts to reopen a stream; the SDK uses it around its own retries. It
// is not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next returns the next delay.
func (b *Backoff) Next() time.Duration {
	hi := b.Min << min(b.n, 20)
	if hi > b.Max || hi <= 0 {
		hi = b.Max
	}
	b.n++
	if hi <= b.Min {
		return b.Min
	}
	return b.Min + rand.N(hi-b.Min+1)
}

// Reset starts the delays from Min again.
func (b *Backoff) Reset() { b.n = 0 }

// Wait waits the next delay, or until ctx ends; it reports whether the
// full delay passed.
func (b *Backoff) Wait(ctx context.Context) bool { return sleep(ctx, b.Next()) }

// sleep waits d or until ctx ends; it reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
)

// sseWriter writes server-sent events (api.WriteEvent) and flushes after
// each.
type sseWriter struct {
	c *gin.Context
}

func startSSE(c *gin.Context) *sseWriter {
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	w := &sseWriter{c: c}
	_ = w.comment(api.CommentOpen)
	return w
}

// event writes one event; id is omitted when empty.
func (w *sseWriter) event(id, name string, data any) error {
	return w.flushed(api.WriteEvent(w.c.Writer, id, name, data))
}

func (w *sseWriter) comment(text string) error {
	return w.flushed(api.WriteComment(w.c.Writer, text))
}

func (w *sseWriter) flushed(err error) error {
	if err != nil {
		return err
	}
	w.c.Writer.Flush()
	return nil
}

// streamError is the data of a stream-error event (api.EventError) on the
// stream of c: the error body without details, its message written for
// users; err itself is logged with the request id.
func (s *Server) streamError(c *gin.Context, err error) api.ErrorBody {
	status, code := classify(err)
	target := targetWords(c)
	var msg string
	switch status {
	case http.StatusGone:
		msg = "revisions of " + target + " the stream had not sent yet were removed by history retention; load the snapshot and watch from its revision"
	case http.StatusNotFound:
		msg = target + " was deleted"
	case http.StatusUnauthorized:
		msg = "the token or console session of this stream has ended (it expired or was revoked); sign in again"
	case http.StatusServiceUnavailable:
		msg = "the configuration store cannot be reached; the stream carries on when it is back"
	default:
		msg = s.userMessage(c, err, status)
	}
	s.cfg.Logger.Info("stream error", "request_id", state(c).id, "code", code, "err", err)
	return api.ErrorBody{Error: &api.Error{Code: code, Message: msg}}
}

// watch streams every revision after Last-Event-ID (else ?since=N; default:
// the current head, i.e. only new revisions) as server-sent events, the
// active grays when it opens and after every change ("grays"), with a
// ": ping" comment every Heartbeat, until the client goes away or the
// Server is closed. See docs/architecture.md, "Server ↔ SDK".
func (s *Server) watch(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok {
			return
		}
		since, sinceField, hasSince, err := api.WatchFrom(c.Request)
		if err != nil {
			s.fail(c, err)
			return
		}
		if !s.authorizeRead(c, ref) {
			return
		}
		// Check existence (and the head) within the request timeout, so a
		// missing service or a down store is a plain HTTP error.
		hctx, hcancel := context.WithTimeout(c.Request.Context(), s.cfg.RequestTimeout)
		h, err := s.cfg.Store.Head(hctx, ref)
		hcancel()
		if err != nil {
			s.fail(c, err)
			return
		}
		if !hasSince {
			since = h.Revision
		}
		if since > h.Revision {
			s.fail(c, &configsvc.FieldError{Field: sinceField, Value: strconv.FormatInt(since, 10), Msg: fmt.Sprintf("is after the head revision %d", h.Revision)})
			return
		}

		watch := func(ctx context.Context) <-chan configsvc.Event {
			events := s.cfg.Store.Watch(ctx, ref, since)
			// The head read after Watch started: its grays are the stream's
			// first "grays" event, and any change after Watch started is an
			// event of the watch (the store took its baseline in Watch).
			hctx, hcancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
			h, err := s.cfg.Store.Head(hctx, ref)
			hcancel()
			if err != nil {
				return events // the watch reports the trouble itself
			}
			return graysFirst(ctx, events, h, since)
		}
		var poll func(context.Context, *sseWriter) error
		if c.Query(api.ChangesParam) == "true" {
			poll = s.pollNotice(ref)
		}
		streamSSE(c, s, "revisions", watch, poll, func(w *sseWriter, ev configsvc.Event) (bool, error) {
			switch {
			case ev.Err != nil:
				end := errors.Is(ev.Err, configsvc.ErrCompacted) || errors.Is(ev.Err, configsvc.ErrNotFound)
				return end, w.event("", api.EventError, s.streamError(c, ev.Err))
			case ev.Revision != nil:
				return false, w.event(strconv.FormatInt(ev.Revision.Number, 10), api.EventRevision, api.FromRevision(*ev.Revision, true))
			case ev.LinksChanged:
				return false, w.event("", api.EventLinks, api.LinksData{Links: append([]string{}, ev.Links...)})
			case ev.GraysChanged:
				return false, w.event("", api.EventGrays, api.GraysData{Grays: append([]api.GraySummary{}, ev.Grays...)})
			}
			return false, nil
		})
	}
}

// graysFirst returns events with one GraysChanged event carrying head's
// grays added where a client needs it: at once when the stream starts at
// or after head's revision, else right after the revision event of head's
// revision (so a promote's revision still arrives before its gray leaves
// the set, as the store's watch orders them). A GraysChanged event of the
// watch before that point is newer than head and replaces it. The channel
// closes when events does; its goroutine ends with ctx.
func graysFirst(ctx context.Context, events <-chan configsvc.Event, head configsvc.Head, since int64) <-chan configsvc.Event {
	out := make(chan configsvc.Event)
	initial := configsvc.Event{GraysChanged: true, Grays: append([]configsvc.GraySummary{}, head.Grays...)}
	go func() {
		defer close(out)
		defer func() {
			for range events { // the watch ends with ctx; let its goroutine finish
			}
		}()
		send := func(ev configsvc.Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		pending := true
		if since >= head.Revision {
			pending = false
			if !send(initial) {
				return
			}
		}
		for ev := range events {
			if ev.GraysChanged {
				pending = false
			}
			if !send(ev) {
				return
			}
			if pending && ev.Revision != nil && ev.Revision.Number >= head.Revision {
				pending = false
				if !send(initial) {
					return
				}
			}
		}
	}()
	return out
}

// watchInstances streams the live instance list of a service: an
// "instances" event now and after every change.
func (s *Server) watchInstances(c *gin.Context) {
	ref, ok := s.refParam(c, configsvc.KindService)
	if !ok || !s.authorize(c, access.ActionInstances, access.Target{Ref: ref}) {
		return
	}
	hctx, hcancel := context.WithTimeout(c.Request.Context(), s.cfg.RequestTimeout)
	_, err := s.cfg.Store.Head(hctx, ref)
	hcancel()
	if err != nil {
		s.fail(c, err)
		return
	}
	watch := func(ctx context.Context) <-chan configsvc.InstancesEvent {
		return s.cfg.Store.WatchInstances(ctx, ref.Name)
	}
	streamSSE(c, s, "instances", watch, nil, func(w *sseWriter, ev configsvc.InstancesEvent) (bool, error) {
		if ev.Err != nil {
			return false, w.event("", api.EventError, s.streamError(c, ev.Err))
		}
		return false, w.event("", api.EventInstances, api.InstancesData{Instances: nonNil(ev.Instances)})
	})
}

// streamSSE answers c with a text/event-stream of the events watch opens:
// each one written by send, a ping comment every Heartbeat in between. It
// returns when the stream context ends (client gone, server shutting down),
// the events channel closes, a write fails or send reports the stream is
// over; it then cancels the watch and drains it, so the store's watch
// goroutine has finished when the handler returns. kind labels the
// watchers gauge.
//
// It is also where streams answer to access control after they open: a
// token holds at most MaxStreamsPerToken streams on this server (429
// beyond), and every StreamRecheck the credential the stream was opened
// with is checked again (one store read per credential and interval, shared
// by its streams), so a stream ends with an "error" event (unauthorized)
// within StreamRecheck of its token's revocation or expiry or its
// session's end, on whichever server it was revoked.
func streamSSE[E any](c *gin.Context, s *Server, kind string, watch func(context.Context) <-chan E, poll func(context.Context, *sseWriter) error, send func(*sseWriter, E) (end bool, err error)) {
	st := state(c)
	release, err := s.streams.acquire(st.principal.TokenID, s.cfg.MaxStreamsPerToken)
	if err != nil {
		s.fail(c, err)
		return
	}
	defer release()
	ctx, cancel := s.streamContext(c.Request)
	events := watch(ctx)
	defer func() {
		cancel()
		for range events {
		}
	}()
	gauge := s.metrics.watchers.WithLabelValues(kind)
	gauge.Inc()
	defer gauge.Dec()
	w := startSSE(c)
	ping := time.NewTicker(s.cfg.Heartbeat)
	defer ping.Stop()
	recheck := time.NewTicker(s.cfg.StreamRecheck)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ping.C:
			if w.comment(api.CommentPing) != nil {
				return
			}
		case <-recheck.C:
			if err := s.streamAllowed(ctx, st); err != nil {
				_ = w.event("", api.EventError, s.streamError(c, err))
				return
			}
			if poll != nil && poll(ctx, w) != nil {
				return
			}
		case ev, ok := <-events:
			if !ok {
				return
			}
			if end, err := send(w, ev); end || err != nil {
				return
			}
		}
	}
}

// streamAllowed reports why the stream of st must end, or nil: the
// principal's expiry has passed, or its credential no longer authenticates
// (Server.recheck).
func (s *Server) streamAllowed(ctx context.Context, st *reqState) error {
	if exp := st.principal.Expires; !exp.IsZero() && !s.cfg.Now().Before(exp) {
		return fmt.Errorf("token or session expired at %s: %w", exp.UTC().Format(time.RFC3339), access.ErrUnauthenticated)
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	return s.recheck(rctx, st.cred)
}

func nonNil(in []configsvc.Instance) []configsvc.Instance {
	if in == nil {
		return []configsvc.Instance{}
	}
	return in
}

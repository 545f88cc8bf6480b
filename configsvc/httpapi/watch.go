package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/fanout"
)

// subscriber is a store whose watches are shared and can be read without a
// goroutine per stream (configsvc/fanout.Store): a stream then costs one
// goroutine and little more.
type subscriber interface {
	Subscribe(ctx context.Context, ref configsvc.Ref, from int64, head *configsvc.Head, opts ...configsvc.WatchOption) *fanout.Subscription
	SubscribeInstances(svc string) *fanout.InstancesSubscription
}

// eventViewer is a store layer that shows a watch's events in each
// reader's view (secrets.Store: secret files as a placeholder, the value or
// the envelope). A stream reading a shared watch below it applies it to
// every event; fatal ends the stream after that event.
type eventViewer interface {
	ViewEvent(ctx context.Context, ref configsvc.Ref, ev configsvc.Event) (out configsvc.Event, fatal bool)
}

// subscriberOf returns the subscriber st is or wraps, with the viewers of
// the layers above it (outermost first), or nil. It unwraps only through
// layers known to leave a watch's events alone (configsvc.ValidatingStore)
// or that are eventViewers; below any other layer the shared watch would
// bypass what that layer does, so the stream uses st.Watch instead.
func subscriberOf(st configsvc.Store) (subscriber, []eventViewer) {
	var viewers []eventViewer
	for st != nil {
		if sub, ok := st.(subscriber); ok {
			return sub, viewers
		}
		switch l := st.(type) {
		case *configsvc.ValidatingStore:
		case eventViewer:
			viewers = append(viewers, l)
		default:
			return nil, nil
		}
		u, ok := st.(interface{ Unwrap() configsvc.Store })
		if !ok {
			return nil, nil
		}
		st = u.Unwrap()
	}
	return nil, nil
}

// viewedPoll is poll with viewers applied to every event it hands out,
// innermost first; after an event a viewer made fatal it reports done.
func viewedPoll(ctx context.Context, ref configsvc.Ref, viewers []eventViewer, poll func() (configsvc.Event, bool, <-chan struct{}, time.Time, bool)) func() (configsvc.Event, bool, <-chan struct{}, time.Time, bool) {
	if len(viewers) == 0 {
		return poll
	}
	ended := false
	return func() (configsvc.Event, bool, <-chan struct{}, time.Time, bool) {
		if ended {
			return configsvc.Event{}, false, nil, time.Time{}, true
		}
		ev, ok, wake, retry, done := poll()
		if ok {
			for i := len(viewers) - 1; i >= 0 && !ended; i-- {
				ev, ended = viewers[i].ViewEvent(ctx, ref, ev)
			}
		}
		return ev, ok, wake, retry, done
	}
}

// source is where a stream's events come from: the channel of a store's
// watch, or the Next and Notify of a shared watch's Subscription (events
// nil): poll returns the next event, or what to wait for (wake to close,
// the time retry); notify calls a function once wake has closed, so that
// a stream can wait without a goroutine selecting on it (connLoop).
type source[E any] struct {
	events <-chan E
	poll   func() (ev E, ok bool, wake <-chan struct{}, retry time.Time, done bool)
	notify func(wake <-chan struct{}, f func())
	close  func()
}

// chanSource is the source of a store's watch channel.
func chanSource[E any](events <-chan E) source[E] { return source[E]{events: events} }

// sseWriter writes server-sent events (api.WriteEvent) and flushes after
// each: to the response, or, once a stream has taken its connection over
// (streamSSE), straight to the connection as HTTP/1.1 chunks.
type sseWriter struct {
	out   io.Writer
	flush func()
}

func startSSE(c *gin.Context) *sseWriter {
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	w := &sseWriter{out: c.Writer, flush: c.Writer.Flush}
	_ = w.comment(api.CommentOpen)
	return w
}

// event writes one event; id is omitted when empty.
func (w *sseWriter) event(id, name string, data any) error {
	return w.flushed(api.WriteEvent(w.out, id, name, data))
}

// raw writes an event encoded before (eventCache).
func (w *sseWriter) raw(b []byte) error {
	_, err := w.out.Write(b)
	return w.flushed(err)
}

// eventCacheSize is how many encoded revision events eventCache keeps.
const eventCacheSize = 8

// eventCache keeps the encoded "revision" events of the newest revisions
// streams sent, by the *configsvc.Revision they came in: a shared watch
// (configsvc/fanout) hands every stream of a ref the same one, so that a
// publish followed by thousands of streams is encoded once, not once per
// stream. Events of unshared watches are each their own entry, as
// cheap as before. Safe for concurrent use.
type eventCache struct {
	mu   sync.Mutex
	m    map[*configsvc.Revision][]byte
	keys []*configsvc.Revision // oldest first
}

func newEventCache() *eventCache {
	return &eventCache{m: make(map[*configsvc.Revision][]byte, eventCacheSize)}
}

// revision returns rev's event as api.WriteEvent writes it. The streams
// that ask while it is encoded wait for it rather than encode it too.
func (c *eventCache) revision(rev *configsvc.Revision) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.m[rev]; ok {
		return b, nil
	}
	var buf bytes.Buffer
	if err := api.WriteEvent(&buf, strconv.FormatInt(rev.Number, 10), api.EventRevision, api.FromRevision(*rev, true)); err != nil {
		return nil, err
	}
	if len(c.keys) == eventCacheSize {
		delete(c.m, c.keys[0])
		c.keys = append(c.keys[:0], c.keys[1:]...)
	}
	c.m[rev] = buf.Bytes()
	c.keys = append(c.keys, rev)
	return buf.Bytes(), nil
}

func (w *sseWriter) comment(text string) error {
	return w.flushed(api.WriteComment(w.out, text))
}

func (w *sseWriter) flushed(err error) error {
	if err != nil {
		return err
	}
	if w.flush != nil {
		w.flush()
	}
	return nil
}

// chunkWriter writes each Write as one HTTP/1.1 chunk to a connection
// taken over from net/http after the response's headers went out chunked.
type chunkWriter struct{ conn net.Conn }

func (cw chunkWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	buf := make([]byte, 0, len(p)+12)
	buf = strconv.AppendInt(buf, int64(len(p)), 16)
	buf = append(buf, "\r\n"...)
	buf = append(buf, p...)
	buf = append(buf, "\r\n"...)
	if _, err := cw.conn.Write(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}

// streamError is the data of a stream-error event (api.EventError) on the
// stream of c: the error body without details, its message written for
// users; err itself is logged with the request id.
func (s *Server) streamError(c *gin.Context, err error) api.ErrorBody {
	status, code := classify(err)
	target := targetWords(c)
	var msg string
	switch {
	case code == api.CodeRewritten:
		msg = "the store's history of " + target + " was rewritten (restored from a backup or imported); load the snapshot and follow it as a new history"
	case status == http.StatusGone:
		msg = "revisions of " + target + " the stream had not sent yet were removed by history retention; load the snapshot and watch from its revision"
	case status == http.StatusNotFound:
		msg = target + " was deleted"
	case status == http.StatusUnauthorized:
		msg = "the token or console session of this stream has ended (it expired or was revoked); sign in again"
	case status == http.StatusServiceUnavailable:
		msg = "the configuration store cannot be reached; the stream carries on when it is back"
	default:
		msg = s.userMessage(c, err, status)
	}
	s.cfg.Logger.Info("stream error", "request_id", state(c).id, "code", code, "err", err)
	return api.ErrorBody{Error: &api.Error{Code: code, Message: msg}}
}

// watch streams every revision after Last-Event-ID (else ?since=N; default:
// the current head, i.e. only new revisions) as server-sent events, the
// active grays once the revisions up to the head are sent and after every
// change ("grays", from the store's watch), with a
// ": ping" comment every Heartbeat, until the client goes away or the
// Server is closed. See docs/architecture.md, "Server ↔ SDK".
//
// The head it starts from is a linearizable read (the store syncs first),
// so a since past it names a revision this store does not have: the client
// followed a store that has gone back (a restore) or another cluster. In
// the same generation that is answered 503 behind with Retry-After (the
// client waits, or asks another server), never a snapshot from the past;
// with ?generation= naming another generation, the stream opens and ends
// at once with a stream-error event of code rewritten, as it does when
// ?publish_id= names another revision than the store's at since.
func (s *Server) watch(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		ref, ok := s.refParam(c, kind)
		if !ok {
			return
		}
		since, sinceField, hasSince, err := api.WatchFrom(c.Request)
		var expect configsvc.Identity
		if err == nil {
			expect, err = api.WatchExpect(c.Request)
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		if !hasSince {
			expect = configsvc.Identity{} // it describes the revision since names
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
		if since > h.Revision && h.Identity().SameGeneration(expect) {
			s.metrics.behind.Inc()
			s.fail(c, userErr(api.ErrBehind, "%s %d is after the head revision %d of %s, read after a sync: this server's store has not reached it (it may lag, or was restored from an older backup); try again in %d s or ask another server",
				sinceField, since, h.Revision, targetWords(c), s.retryAfter))
			return
		}

		// The store's watch sends the active grays itself, first from the
		// head it catches up to, then on every change: the stream never
		// reads the head apart from the events it forwards, which could
		// hand a client a set the watch already saw change.
		watch := func(ctx context.Context) source[configsvc.Event] {
			if s.shared != nil {
				if sub := s.shared.Subscribe(ctx, ref, since, &h, configsvc.Expect(expect)); sub != nil {
					return source[configsvc.Event]{poll: viewedPoll(ctx, ref, s.viewers, sub.Next), notify: sub.Notify, close: sub.Close}
				}
			}
			return chanSource(s.cfg.Store.Watch(ctx, ref, since, configsvc.Expect(expect)))
		}
		var poll func(context.Context, *sseWriter) error
		if c.Query(api.ChangesParam) == "true" {
			poll = s.pollNotice(ref)
		}
		streamSSE(c, s, "revisions", watch, poll, func(c *gin.Context, w *sseWriter, ev configsvc.Event) (bool, error) {
			switch {
			case ev.Err != nil:
				if errors.Is(ev.Err, configsvc.ErrRewritten) {
					s.metrics.rewrites.WithLabelValues(ref.Kind.String()).Inc()
					s.cfg.Logger.Warn("store history rewritten under a watch; the client reloads", "request_id", state(c).id, "ref", ref.String(), "err", ev.Err)
				}
				end := errors.Is(ev.Err, configsvc.ErrCompacted) || errors.Is(ev.Err, configsvc.ErrNotFound) || errors.Is(ev.Err, configsvc.ErrRewritten)
				return end, w.event("", api.EventError, s.streamError(c, ev.Err))
			case ev.Revision != nil:
				b, err := s.encoded.revision(ev.Revision)
				if err != nil {
					return false, err
				}
				return false, w.raw(b)
			case ev.LinksChanged:
				return false, w.event("", api.EventLinks, api.LinksData{Links: append([]string{}, ev.Links...)})
			case ev.GraysChanged:
				return false, w.event("", api.EventGrays, api.GraysData{Grays: append([]api.GraySummary{}, ev.Grays...)})
			}
			return false, nil
		})
	}
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
	watch := func(ctx context.Context) source[configsvc.InstancesEvent] {
		if s.shared != nil {
			if sub := s.shared.SubscribeInstances(ref.Name); sub != nil {
				poll := func() (configsvc.InstancesEvent, bool, <-chan struct{}, time.Time, bool) {
					ev, ok, wake, done := sub.Next()
					return ev, ok, wake, time.Time{}, done
				}
				return source[configsvc.InstancesEvent]{poll: poll, notify: sub.Notify, close: sub.Close}
			}
		}
		return chanSource(s.cfg.Store.WatchInstances(ctx, ref.Name))
	}
	streamSSE(c, s, "instances", watch, nil, func(c *gin.Context, w *sseWriter, ev configsvc.InstancesEvent) (bool, error) {
		if ev.Err != nil {
			return false, w.event("", api.EventError, s.streamError(c, ev.Err))
		}
		return false, w.event("", api.EventInstances, api.InstancesData{Instances: nonNil(ev.Instances)})
	})
}

// streamSSE answers c with a text/event-stream of the events watch opens:
// each one written by send, a ping comment every Heartbeat in between. It
// returns when the stream context ends (client gone, server shutting down),
// the events end, a write fails or send reports the stream is over; it
// then cancels the watch and drains it (or closes the subscription), so the
// store's watch goroutine has finished when the handler returns. A shared
// watch's subscription is polled on the request's goroutine: the stream
// holds no goroutine of its own. kind labels the watchers gauge.
//
// It is also where streams answer to access control after they open: a
// token holds at most MaxStreamsPerToken streams on this server (429
// beyond), and every StreamRecheck the credential the stream was opened
// with is checked again (one store read per credential and interval, shared
// by its streams), so a stream ends with an "error" event (unauthorized)
// within StreamRecheck of its token's revocation or expiry or its
// session's end, on whichever server it was revoked.
func streamSSE[E any](c *gin.Context, s *Server, kind string, watch func(context.Context) source[E], poll func(context.Context, *sseWriter) error, send func(*gin.Context, *sseWriter, E) (end bool, err error)) {
	st := state(c)
	release, err := s.streams.acquire(st.principal.TokenID, s.cfg.MaxStreamsPerToken)
	if err != nil {
		s.fail(c, err)
		return
	}
	// The stream ends with the server, and with the request until it
	// takes the connection over (then with the connection). It keeps the
	// request's values (the principal's view of secret files).
	ctx, cancel := context.WithCancel(context.WithoutCancel(c.Request.Context()))
	stopWithServer := context.AfterFunc(s.ctx, cancel)
	detach := context.AfterFunc(c.Request.Context(), cancel)
	src := watch(ctx)
	gauge := s.metrics.watchers.WithLabelValues(kind)
	gauge.Inc()
	end := func() {
		stopWithServer()
		cancel()
		if src.events != nil {
			for range src.events {
			}
		}
		if src.close != nil {
			src.close()
		}
		gauge.Dec()
		release()
	}
	conn, took := takeOver(c)
	if took && !detach() { // the request ended already
		conn.Close()
		end()
		return
	}
	if took {
		// Over HTTP/1.1 the stream takes its connection from net/http, so
		// that an idle stream holds one small goroutine instead of the
		// request's deep one and net/http's buffers. From here the
		// stream ends with the client's close, seen by the read that
		// goroutine waits in, and with the server's, which closes the
		// connection (unblocking a write to a stuck client as well).
		if !stopWithServer() { // the server is closing
			conn.Close()
			end()
			return
		}
		stopWithServer = context.AfterFunc(s.ctx, func() { cancel(); conn.Close() })
		w := &sseWriter{out: chunkWriter{conn}}
		opened := writeSSEHeader(conn, c.Writer.Header()) == nil && w.comment(api.CommentOpen) == nil
		cc := c.Copy()
		cc.Request = streamRequest(c.Request)
		if !s.streamsG.Go(func() {
			defer end()
			switch {
			case opened && src.notify != nil:
				connLoop(ctx, s, cc, st, conn, w, src, poll, send)
				endChunked(conn)
			case opened:
				readerLoop(ctx, cancel, s, cc, st, conn, w, src, poll, send)
			}
			conn.Close()
		}) {
			conn.Close()
			end()
		}
		return
	}
	defer end()
	streamLoop(ctx, s, c, st, startSSE(c), src, poll, send)
}

// readerLoop is streamLoop on a connection the stream took over, for a
// source that has no notify (a store's watch channel): a second goroutine
// reads the connection to see the client's close and cancels ctx.
func readerLoop[E any](ctx context.Context, cancel context.CancelFunc, s *Server, c *gin.Context, st *reqState, conn net.Conn, w *sseWriter, src source[E], poll func(context.Context, *sseWriter) error, send func(*gin.Context, *sseWriter, E) (end bool, err error)) {
	read := make(chan struct{})
	go func() { // the client's close ends the stream
		defer close(read)
		var b [64]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				cancel()
				return
			}
		}
	}()
	streamLoop(ctx, s, c, st, w, src, poll, send)
	endChunked(conn)
	conn.Close() // ends the read
	<-read
}

// endChunked writes the last chunk of a chunked response.
func endChunked(conn net.Conn) { _, _ = io.WriteString(conn, "0\r\n\r\n") }

// connLoop is streamLoop on a connection the stream took over, for a
// source with notify (a shared watch), on one goroutine: between events it
// waits in a read of the connection, which returns when the client
// closes it (or sends something, which is discarded), when the server
// closes it, and at a read deadline: the next ping, or now, set by the
// source's notify when there is something to poll or by the Server's
// credWatch when the stream's credential failed. A stream re-checks on its
// own every StreamRecheck only what credWatch does not: its principal's
// expiry, and poll. An idle stream so holds one goroutine parked in the
// network poller, no timer or channel of its own, and wakes for its pings.
func connLoop[E any](ctx context.Context, s *Server, c *gin.Context, st *reqState, conn net.Conn, w *sseWriter, src source[E], poll func(context.Context, *sseWriter) error, send func(*gin.Context, *sseWriter, E) (end bool, err error)) {
	var woken atomic.Bool
	// The flag is set before the deadline, one in the past, which makes
	// the read return at once: a wake-up that lands between the loop's
	// clearing the flag and setting its own deadline is seen by the check
	// after that deadline is set.
	wakeUp := func() {
		woken.Store(true)
		_ = conn.SetReadDeadline(time.Unix(1, 0))
	}
	cred := s.credWatch.join(access.HashToken(st.cred.secret), st.cred, wakeUp)
	defer cred.leave()
	// Without an expiry or a poll, nothing is checked on the stream's own
	// schedule.
	ownChecks := poll != nil || !st.principal.Expires.IsZero()
	now := time.Now()
	nextPing, nextCheck := now.Add(s.cfg.Heartbeat), now.Add(s.cfg.StreamRecheck)
	var b [64]byte
	for {
		woken.Store(false)
		if err := cred.err(); err != nil {
			_ = w.event("", api.EventError, s.streamError(c, err))
			return
		}
		var wake <-chan struct{}
		var retry time.Time
		for { // what the shared watch has now
			ev, ok, wk, rt, done := src.poll()
			if done {
				return
			}
			if !ok {
				wake, retry = wk, rt
				break
			}
			if end, err := send(c, w, ev); end || err != nil {
				return
			}
		}
		if wake != nil {
			src.notify(wake, wakeUp)
		}
		deadline := nextPing
		if ownChecks && nextCheck.Before(deadline) {
			deadline = nextCheck
		}
		if !retry.IsZero() && retry.Before(deadline) {
			deadline = retry
		}
		if conn.SetReadDeadline(deadline) != nil {
			return
		}
		for !woken.Load() {
			if _, err := conn.Read(b[:]); err != nil {
				if !errors.Is(err, os.ErrDeadlineExceeded) || ctx.Err() != nil {
					return // the client or the server closed the connection
				}
				break
			}
		}
		now = time.Now()
		if ownChecks && !now.Before(nextCheck) {
			if err := s.expired(st); err != nil {
				_ = w.event("", api.EventError, s.streamError(c, err))
				return
			}
			if poll != nil && poll(ctx, w) != nil {
				return
			}
			nextCheck = now.Add(s.cfg.StreamRecheck)
		}
		if !now.Before(nextPing) {
			if w.comment(api.CommentPing) != nil {
				return
			}
			nextPing = now.Add(s.cfg.Heartbeat)
		}
	}
}

// streamRequest returns what a stream that took its connection over keeps
// of its request r for the error events and log lines it may write later:
// a copy with r's method, URL and context (its values: the principal's
// view of secret files), without the header, trailer, body or TLS state.
func streamRequest(r *http.Request) *http.Request {
	lean := new(http.Request)
	*lean = *r
	lean.Header, lean.Trailer, lean.Body, lean.GetBody, lean.TLS = nil, nil, http.NoBody, nil, nil
	lean.Form, lean.PostForm, lean.MultipartForm = nil, nil, nil
	return lean
}

// writeSSEHeader writes the header of a 200 event-stream response, with
// the headers the middleware set (h), chunked, to a connection taken over
// before net/http wrote anything.
func writeSSEHeader(conn net.Conn, h http.Header) error {
	h = h.Clone()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Transfer-Encoding", "chunked")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Del("Content-Length")
	var b strings.Builder
	b.WriteString("HTTP/1.1 200 OK\r\n")
	if err := h.Write(&b); err != nil {
		return err
	}
	b.WriteString("\r\n")
	_, err := io.WriteString(conn, b.String())
	return err
}

// takeOver hijacks the connection of an HTTP/1.1 event stream before
// anything of its response was written; false when it cannot (HTTP/2, a
// writer that cannot hijack, e.g. a wrapping middleware's). A stream that took its connection over
// ends with the client's close and the Server's Close, no longer with its
// request's context.
func takeOver(c *gin.Context) (net.Conn, bool) {
	if c.Request.ProtoMajor != 1 || c.Request.ProtoMinor < 1 || c.Writer.Written() {
		return nil, false
	}
	// Only through gin's writer, which records the hijack, and only when
	// the writer it wraps can (gin's Hijack assumes it).
	if u, ok := c.Writer.(interface{ Unwrap() http.ResponseWriter }); !ok {
		return nil, false
	} else if _, ok := u.Unwrap().(http.Hijacker); !ok {
		return nil, false
	}
	conn, rw, err := c.Writer.Hijack()
	if err != nil {
		return nil, false
	}
	// Nothing of the response is buffered yet; bytes the client sent after
	// its request (none, for an event stream) are left unread. A failed
	// flush ends the stream at its first write.
	_ = rw.Writer.Flush()
	return conn, true
}

// streamLoop writes the events of src with send, a ping every Heartbeat,
// and rechecks the stream's credential every StreamRecheck, until ctx
// ends, the events end, a write fails or send reports the end. c is the
// request's context, or its copy once the stream took its connection over.
func streamLoop[E any](ctx context.Context, s *Server, c *gin.Context, st *reqState, w *sseWriter, src source[E], poll func(context.Context, *sseWriter) error, send func(*gin.Context, *sseWriter, E) (end bool, err error)) {
	ping := time.NewTicker(s.cfg.Heartbeat)
	defer ping.Stop()
	recheck := time.NewTicker(s.cfg.StreamRecheck)
	defer recheck.Stop()
	key := access.HashToken(st.cred.secret)
	for {
		var wake <-chan struct{}
		var retry <-chan time.Time
		var retryT *time.Timer
		for src.poll != nil { // what the shared watch has now
			ev, ok, wk, rt, done := src.poll()
			if done {
				return
			}
			if !ok {
				wake = wk
				if !rt.IsZero() {
					retryT = time.NewTimer(time.Until(rt))
					retry = retryT.C
				}
				break
			}
			if end, err := send(c, w, ev); end || err != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-wake:
		case <-retry:
		case <-ping.C:
			if w.comment(api.CommentPing) != nil {
				return
			}
		case <-recheck.C:
			if err := s.streamAllowed(ctx, st, key); err != nil {
				_ = w.event("", api.EventError, s.streamError(c, err))
				return
			}
			if poll != nil && poll(ctx, w) != nil {
				return
			}
		case ev, ok := <-src.events:
			if !ok {
				return
			}
			if end, err := send(c, w, ev); end || err != nil {
				return
			}
		}
		if retryT != nil {
			retryT.Stop()
		}
	}
}

// streamAllowed reports why the stream of st must end, or nil: the
// principal's expiry has passed, or its credential no longer authenticates
// (Server.recheck).
// key is the credential's hash (access.HashToken).
func (s *Server) streamAllowed(ctx context.Context, st *reqState, key string) error {
	if err := s.expired(st); err != nil {
		return err
	}
	return s.recheck(ctx, st.cred, key)
}

// expired reports, wrapping access.ErrUnauthenticated, that the
// principal of st has passed its expiry; nil before it or without one.
func (s *Server) expired(st *reqState) error {
	if exp := st.principal.Expires; !exp.IsZero() && !s.cfg.Now().Before(exp) {
		return fmt.Errorf("token or session expired at %s: %w", exp.UTC().Format(time.RFC3339), access.ErrUnauthenticated)
	}
	return nil
}

func nonNil(in []configsvc.Instance) []configsvc.Instance {
	if in == nil {
		return []configsvc.Instance{}
	}
	return in
}

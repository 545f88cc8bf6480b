package webui_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// streamCutter wraps the admin server to end a watch stream server-side
// (the handler returns, the response ends) and to hold reconnections at a
// gate, recording how each watch request asked to resume.
type streamCutter struct {
	path string // the watch path it acts on
	mu   sync.Mutex
	gate chan struct{} // nil: open; else requests wait until it is closed
	stop []context.CancelFunc
	reqs []watchRequest
}

type watchRequest struct{ since, lastEventID string }

func (s *streamCutter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != s.path {
			next.ServeHTTP(w, r)
			return
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, watchRequest{since: r.URL.Query().Get(api.SinceParam), lastEventID: r.Header.Get(api.LastEventIDHeader)})
		gate := s.gate
		s.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		s.mu.Lock()
		s.stop = append(s.stop, cancel)
		s.mu.Unlock()
		// A stream that takes its connection over from net/http no longer
		// follows its request's context; behind a writer that cannot be
		// hijacked it stays a plain response, which the cut ends.
		next.ServeHTTP(flushOnly{w}, r.WithContext(ctx))
	})
}

// flushOnly is a ResponseWriter that can flush but not be hijacked.
type flushOnly struct{ w http.ResponseWriter }

func (f flushOnly) Header() http.Header         { return f.w.Header() }
func (f flushOnly) Write(b []byte) (int, error) { return f.w.Write(b) }
func (f flushOnly) WriteHeader(code int)        { f.w.WriteHeader(code) }
func (f flushOnly) Flush()                      { http.NewResponseController(f.w).Flush() }

// cut ends every open stream and holds the reconnections until release.
func (s *streamCutter) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate = make(chan struct{})
	for _, c := range s.stop {
		c()
	}
	s.stop = nil
}

func (s *streamCutter) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
}

func (s *streamCutter) requests() []watchRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// TestEventSourceResumesWithoutDuplicates opens the watch stream with
// Chromium's own EventSource, as the console does (`?since=N` in the URL),
// cuts it server-side, publishes while the browser waits to reconnect, and
// checks that the browser's automatic reconnection (same URL, plus
// Last-Event-ID) delivers every revision exactly once. It also checks that
// the stream's own errors reach addEventListener('stream-error') while
// onerror only sees connection errors (no data).
func TestEventSourceResumesWithoutDuplicates(t *testing.T) {
	const svc = "es-orders"
	cutter := &streamCutter{path: "/v1/services/" + svc + "/watch"}
	c := startConsoleWith(t, cutter.wrap)
	ctx := context.Background()
	ref := configsvc.Service(svc)
	if _, _, err := c.api.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	publish := func(n int) {
		t.Helper()
		rev, err := c.api.PutFile(ctx, ref, "a.txt", fmt.Appendf(nil, "v%d", n))
		if err != nil || rev.Number != int64(n) {
			t.Fatalf("publish %d: revision %d, %v", n, rev.Number, err)
		}
	}
	for n := 1; n <= 3; n++ {
		publish(n)
	}

	tb := newTab(t, startBrowser(t), c.url)
	tb.signIn(c.admin) // the session cookie authenticates the EventSource
	evalJS[bool](tb, `(() => {
		window.got = []; window.streamErrors = []; window.connErrors = [];
		const es = new EventSource('/v1/services/`+svc+`/watch?since=1');
		es.addEventListener('revision', (ev) => window.got.push(Number(ev.lastEventId)));
		es.addEventListener('stream-error', (ev) => {
			window.streamErrors.push(ev.data);
			const code = (JSON.parse(ev.data).error || {}).code;
			if (code === 'compacted' || code === 'not_found') es.close();
		});
		es.onerror = (ev) => window.connErrors.push({data: ev.data === undefined ? null : String(ev.data), state: es.readyState});
		window.es = es;
		return true;
	})()`)
	tb.waitFor("revisions 2 and 3", `window.got.length >= 2`)

	// Cut the stream; publish 4 and 5 while the browser waits to reconnect.
	cutter.cut()
	tb.waitFor("the browser to see the connection end", `window.connErrors.length >= 1`)
	publish(4)
	publish(5)
	cutter.release()
	tb.waitFor("revision 5 after the reconnection", `window.got.includes(5)`)
	publish(6)
	tb.waitFor("revision 6 on the resumed stream", `window.got.includes(6)`)

	got := evalJS[[]int64](tb, `window.got`)
	if want := []int64{2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("revisions the EventSource received: %v, want %v (each once, in order)", got, want)
	}
	reqs := cutter.requests()
	if len(reqs) < 2 || reqs[1].since != "1" || reqs[1].lastEventID != "3" {
		t.Errorf("watch requests %+v: want the reconnection to carry since=1 and Last-Event-ID 3, as a standard EventSource does", reqs)
	}

	// A stream error (the service is deleted: not_found) reaches the
	// stream-error listener; onerror saw only connection errors.
	if err := c.api.Delete(ctx, ref); err != nil {
		t.Fatal(err)
	}
	tb.waitFor("the stream-error event", `window.streamErrors.length >= 1`)
	var streamErrors []string
	if err := json.Unmarshal([]byte(evalJS[string](tb, `JSON.stringify(window.streamErrors)`)), &streamErrors); err != nil {
		t.Fatal(err)
	}
	var body api.ErrorBody
	if err := json.Unmarshal([]byte(streamErrors[0]), &body); err != nil || body.Error == nil || body.Error.Code != api.CodeNotFound {
		t.Errorf("stream-error data %q, want the error body with code %s", streamErrors[0], api.CodeNotFound)
	}
	conn := evalJS[string](tb, `JSON.stringify(window.connErrors)`)
	var connErrors []struct {
		Data  *string `json:"data"`
		State int     `json:"state"`
	}
	if err := json.Unmarshal([]byte(conn), &connErrors); err != nil {
		t.Fatal(err)
	}
	for _, e := range connErrors {
		if e.Data != nil {
			t.Errorf("onerror received a stream's data %q: stream errors must not use the event name \"error\"", *e.Data)
		}
	}
	if len(connErrors) == 0 || !strings.Contains(conn, `"state":0`) {
		t.Errorf("onerror calls %s: want the cut reported as a connection error while reconnecting (readyState 0)", conn)
	}
}

package httpapi

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/fanout"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/secrets"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// watchCounter counts the watches opened on the store it wraps.
type watchCounter struct {
	configsvc.Store
	watches atomic.Int64
}

func (w *watchCounter) Watch(ctx context.Context, ref configsvc.Ref, from int64, opts ...configsvc.WatchOption) <-chan configsvc.Event {
	w.watches.Add(1)
	return w.Store.Watch(ctx, ref, from, opts...)
}

// TestSharedWatchKeepsTheStreamGuarantees opens many event streams of one
// service on a server wired as `sluice server` wires it (watches shared by
// configsvc/fanout) and checks what the SDK relies on: every stream gets
// every revision in order without gaps, the grays baseline and each grays
// change after the revision it follows, and a stream that resumes from a
// revision it holds (with its identity) continues after it; the store
// holds one watch for all of them.
func TestSharedWatchKeepsTheStreamGuarantees(t *testing.T) {
	run := func(t *testing.T, under configsvc.Store) {
		counted := &watchCounter{Store: under}
		e := newEnvOn(t, configsvc.Validating(fanout.New(counted, fanout.Options{Linger: -1}), format.Validator{}))
		e.mustService("orders", map[string]string{"n.txt": "0"}) // revision 1
		c, err := api.New(api.Config{Servers: []string{e.http.URL}, Token: e.admin, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		orders := configsvc.Service("orders")
		const streams = 60
		chans := make([]<-chan configsvc.Event, streams)
		for i := range chans {
			chans[i] = c.Watch(ctx, orders, 0)
		}
		// Each stream: revision 1, the baseline (no grays).
		for i, ch := range chans {
			evs := collectN(t, ch, 2)
			if evs[0].Revision == nil || evs[0].Revision.Number != 1 || !evs[1].GraysChanged || len(evs[1].Grays) != 0 {
				t.Fatalf("stream %d opened with %+v, want revision 1 then the empty grays baseline", i, evs)
			}
		}
		const publishes = 5
		for i := 2; i <= publishes+1; i++ {
			if _, err := c.PutFile(ctx, orders, "n.txt", []byte(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		g, err := c.CreateGray(ctx, orders, api.GrayRequest{Changes: []api.Change{api.PutChange("n.txt", []byte("gray"))}, Selector: api.Selector{Percent: 10}})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for i, ch := range chans {
			wg.Go(func() {
				evs := collectN(t, ch, publishes+1)
				for j, ev := range evs[:publishes] {
					if ev.Revision == nil || ev.Revision.Number != int64(j+2) || string(ev.Revision.Changes[0].Content) != fmt.Sprint(j+2) {
						t.Errorf("stream %d: event %d = %+v, want revision %d", i, j, ev, j+2)
						return
					}
				}
				if ev := evs[publishes]; !ev.GraysChanged || len(ev.Grays) != 1 || ev.Grays[0].ID != g.ID {
					t.Errorf("stream %d: after the revisions %+v, want the grays with %s", i, ev, g.ID)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		// Resume from revision 3 as the SDK does (its identity sent along).
		r3, err := c.Revision(ctx, orders, 3)
		if err != nil {
			t.Fatal(err)
		}
		resumed := c.Watch(ctx, orders, 3, configsvc.Expect(r3.Identity()))
		evs := collectN(t, resumed, 4)
		for j, ev := range evs[:3] {
			if ev.Revision == nil || ev.Revision.Number != int64(j+4) {
				t.Fatalf("resumed stream: event %d = %+v, want revision %d", j, ev, j+4)
			}
		}
		if ev := evs[3]; !ev.GraysChanged || len(ev.Grays) != 1 {
			t.Fatalf("resumed stream: %+v after the revisions, want the grays baseline with one gray", ev)
		}
		if got := counted.watches.Load(); got != 1 {
			t.Fatalf("the store holds %d watches for %d streams of one service (and the summary index), want 1", got, streams+1)
		}
	}
	t.Run("bolt", func(t *testing.T) { run(t, bolttest.MustOpen(t, boltstore.Options{})) })
	t.Run("zookeeper", func(t *testing.T) { run(t, mustZK(t, zktest.Start(t), "/sluice-fanout")) })
}

// collectN reads n events of ch, failing on an error event, a closed
// channel or a 20 s wait.
func collectN(t *testing.T, ch <-chan configsvc.Event, n int) []configsvc.Event {
	t.Helper()
	var evs []configsvc.Event
	timeout := time.After(20 * time.Second)
	for len(evs) < n {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Errorf("stream closed after %d events, want %d", len(evs), n)
				return evs
			}
			if ev.Err != nil {
				t.Errorf("stream error %v after %d events", ev.Err, len(evs))
				return append(evs, make([]configsvc.Event, n-len(evs))...)
			}
			evs = append(evs, ev)
		case <-timeout:
			t.Errorf("%d events within 20 s, want %d", len(evs), n)
			return append(evs, make([]configsvc.Event, n-len(evs))...)
		}
	}
	return evs
}

// TestStreamOnTakenConnectionEndsWhenTheClientLeaves checks a revision
// stream that took its HTTP/1.1 connection over from net/http: it answers
// a chunked event stream, and when the client closes the connection the
// stream ends (its slot and the subscribers gauge are released) without a
// write to notice it.
func TestStreamOnTakenConnectionEndsWhenTheClientLeaves(t *testing.T) {
	e := newEnvOn(t, configsvc.Validating(fanout.New(bolttest.MustOpen(t, boltstore.Options{}), fanout.Options{Linger: -1}), format.Validator{}),
		func(c *Config) { c.Heartbeat = time.Hour })
	e.mustService("orders", map[string]string{"n.txt": "0"})
	conn, _ := openRawStream(t, e, "/v1/services/orders/watch", api.EventGrays)
	subscribers := func() string {
		m := string(e.must(http.StatusOK, req{method: "GET", path: "/metrics"}).body)
		for line := range strings.SplitSeq(m, "\n") {
			if strings.HasPrefix(line, `sluice_watch_subscribers{stream="revisions"}`) {
				return line
			}
		}
		return ""
	}
	if got := subscribers(); !strings.HasSuffix(got, " 1") {
		t.Fatalf("with the stream open: %q, want 1", got)
	}
	conn.Close()
	testkit.EventuallyTrue(t, 10*time.Second, "the stream ended after the client left", func() bool {
		return strings.HasSuffix(subscribers(), " 0")
	})
}

// opaqueLayer is a store layer httpapi knows nothing of.
type opaqueLayer struct{ configsvc.Store }

func (o opaqueLayer) Unwrap() configsvc.Store { return o.Store }

// TestAttackSharedWatchBypassesSecretView: streams read the shared watch
// below the store they are given, so every layer above it must still
// apply. Reading through the secrets store's Unwrap sent every stream the
// stored envelopes, to readers without the secrets grant and instead of
// the value to those with it. The secrets store is found as a viewer, and
// an unknown layer stops the shared path altogether.
func TestAttackSharedWatchBypassesSecretView(t *testing.T) {
	shared := fanout.New(bolttest.MustOpen(t, boltstore.Options{}), fanout.Options{})
	t.Cleanup(func() { _ = shared.Close() })
	sec := secrets.NewStore(shared, nil)
	sub, viewers := subscriberOf(configsvc.Validating(sec, format.Validator{}))
	if sub == nil || len(viewers) != 1 || viewers[0] != eventViewer(sec) {
		t.Fatalf("through the validation and the secrets store: subscriber %v, viewers %v; want the shared watch with the secrets store as its viewer", sub, viewers)
	}
	if sub, _ := subscriberOf(configsvc.Validating(opaqueLayer{shared}, format.Validator{})); sub != nil {
		t.Fatal("the shared watch was found below a layer that may change events")
	}
}

// openRawStream opens the event stream of path with e's admin token on a
// connection of its own, as a plain HTTP/1.1 client (so the server takes
// the connection over), and reads it up to the first event named first.
// The connection is closed at cleanup.
func openRawStream(t *testing.T, e *testEnv, path, first string) (net.Conn, *api.Decoder) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", path, e.admin)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("open %s: %v %v", path, resp, err)
	}
	if resp.Header.Get("Content-Type") != "text/event-stream" || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("open %s: %v %v, want text/event-stream, chunked", path, resp.Header, resp.TransferEncoding)
	}
	dec := api.NewDecoder(resp.Body)
	for {
		ev, err := dec.Next()
		if err != nil {
			t.Fatalf("stream %s: %v", path, err)
		}
		if ev.Name == first {
			return conn, dec
		}
	}
}

// TestIdleStreamOnTakenConnectionHoldsOneGoroutine checks what an idle
// stream on a shared watch or reader (revisions, instances, pins) costs
// once it took its HTTP/1.1 connection over: one goroutine, parked reading
// the connection, which still writes a ping every Heartbeat, wakes for a
// change and ends as soon as its client leaves (a reader goroutine beside
// the writer made two per stream; an instance stream had a third relaying
// the shared watch's channel, a pins stream one polling the store).
func TestIdleStreamOnTakenConnectionHoldsOneGoroutine(t *testing.T) {
	cases := []struct {
		name, path, event string
		change            func(e *testEnv) (marker string)
	}{
		{name: "revisions", path: "/v1/services/orders/watch", event: api.EventRevision, change: func(e *testEnv) string {
			e.must(http.StatusCreated, req{method: "POST", path: "/v1/services/orders/revisions", token: e.admin,
				body: map[string]any{"message": "m", "changes": []map[string]any{{"file": "n.txt", "content": "1"}}}})
			return `"n.txt"`
		}},
		{name: "instances", path: "/v1/services/orders/instances/watch", event: api.EventInstances, change: func(e *testEnv) string {
			e.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/orders/instances/o-1", token: e.admin, body: map[string]any{"addr": "127.0.0.1:1"}})
			return `"o-1"`
		}},
		{name: "pins", path: "/v1/pins/watch", event: api.EventPins, change: func(e *testEnv) string {
			return e.mustPin(map[string]string{"orders": "orders-1"}).ID
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvOn(t, configsvc.Validating(fanout.New(bolttest.MustOpen(t, boltstore.Options{}), fanout.Options{Linger: -1}), format.Validator{}),
				func(c *Config) { c.Heartbeat = 300 * time.Millisecond })
			e.mustService("orders", map[string]string{"n.txt": "0"})
			first := api.EventGrays // a revision stream's first event is its grays baseline
			if tc.name != "revisions" {
				first = tc.event
			}
			conn, dec := openRawStream(t, e, tc.path, first) // the shared watch and the server's own goroutines start
			settle := func() int {
				n := runtime.NumGoroutine()
				for range 20 { // parked goroutines of ended requests finish meanwhile
					time.Sleep(50 * time.Millisecond)
					n = min(n, runtime.NumGoroutine())
				}
				return n
			}
			before := settle()
			const streams = 20
			conns := make([]net.Conn, streams)
			for i := range conns {
				conns[i], _ = openRawStream(t, e, tc.path, first)
			}
			if got := settle() - before; got > streams+2 {
				t.Errorf("%d idle streams added %d goroutines, want about one each", streams, got)
			}
			// The first stream still pings and wakes for a change.
			marker := tc.change(e)
			pings, changed := 0, false
			for pings < 2 || !changed {
				ev, err := dec.Next()
				if err != nil {
					t.Fatalf("stream: %v (pings %d, changed %v)", err, pings, changed)
				}
				switch {
				case ev.Name == tc.event && strings.Contains(string(ev.Data), marker):
					changed = true
				case ev.Comment && string(ev.Data) == api.CommentPing:
					pings++
				}
			}
			for _, c := range conns {
				c.Close()
			}
			conn.Close()
			testkit.EventuallyTrue(t, 10*time.Second, "every stream ended after its client left", func() bool {
				return runtime.NumGoroutine() <= before-1+2
			})
		})
	}
}

// tokenReads is a store that counts the reads of token records and makes
// each take delay, as a store across a network does.
type tokenReads struct {
	configsvc.Store
	n     atomic.Int64
	delay time.Duration
}

func (t *tokenReads) Records() configsvc.RecordStore { return tokenReadRecords{t.Store.Records(), t} }

type tokenReadRecords struct {
	configsvc.RecordStore
	t *tokenReads
}

func (r tokenReadRecords) Get(ctx context.Context, collection, id string) ([]byte, error) {
	if collection == access.TokensCollection {
		r.t.n.Add(1)
		time.Sleep(r.t.delay)
	}
	return r.RecordStore.Get(ctx, collection, id)
}

// TestStreamsOfOneTokenShareEachRecheck: the streams of one token should
// cost one token read per re-check interval. A stream that reads a store's
// own watch re-checks its token itself every StreamRecheck, reusing a check
// less than half that old; when the reused check ran out, every stream
// that re-checked before the new read finished read the store too (a
// stampede of reads): with 30 streams and a read taking longer than the
// reuse window, most re-checks read. Streams on shared watches are
// re-checked by the server's one credential checker (credWatch), which must
// keep to the same bound.
func TestStreamsOfOneTokenShareEachRecheck(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(map[bool]string{false: "store watches", true: "shared watches"}[shared], func(t *testing.T) {
			const recheck = 100 * time.Millisecond
			reads := &tokenReads{Store: bolttest.MustOpen(t, boltstore.Options{}), delay: 80 * time.Millisecond}
			var st configsvc.Store = reads
			if shared {
				st = fanout.New(reads, fanout.Options{Linger: -1})
			}
			e := newEnvOn(t, configsvc.Validating(st, format.Validator{}),
				func(c *Config) { c.Heartbeat = time.Hour; c.StreamRecheck = recheck })
			e.mustService("orders", map[string]string{"n.txt": "0"})
			const streams = 30
			for range streams {
				openRawStream(t, e, "/v1/services/orders/watch", api.EventGrays)
			}
			start, n0 := time.Now(), reads.n.Load()
			time.Sleep(2 * time.Second)
			got, elapsed := reads.n.Load()-n0, time.Since(start)
			// One read at a time, each followed by a reuse window of recheck/2.
			most := int64(elapsed/(reads.delay+recheck/2)) + 2
			if got > most {
				t.Errorf("%d streams of one token read it %d times in %v, want at most %d (one read per reuse window)", streams, got, elapsed.Round(time.Millisecond), most)
			}
			if got == 0 {
				t.Error("the token was never re-checked")
			}
		})
	}
}

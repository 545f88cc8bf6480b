package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/testkit"
)

// pinReads is a store that counts the reads of every stored pin (the list
// of the pins collection) and, when down, fails them as an unreachable
// store would.
type pinReads struct {
	configsvc.Store
	n    atomic.Int64
	down atomic.Bool
}

func (p *pinReads) Records() configsvc.RecordStore { return pinReadRecords{p.Store.Records(), p} }

type pinReadRecords struct {
	configsvc.RecordStore
	p *pinReads
}

func (r pinReadRecords) List(ctx context.Context, collection string) ([]configsvc.Record, error) {
	if collection == access.PinsCollection {
		r.p.n.Add(1)
		if r.p.down.Load() {
			return nil, fmt.Errorf("pinreads: list %s: connection refused: %w", collection, configsvc.ErrUnavailable)
		}
	}
	return r.RecordStore.List(ctx, collection)
}

// newPinsEnv starts a server on a bbolt store whose pin reads are counted,
// with the services orders and billing.
func newPinsEnv(t *testing.T, mods ...func(*Config)) (*testEnv, *pinReads) {
	t.Helper()
	reads := &pinReads{Store: bolttest.MustOpen(t, boltstore.Options{})}
	e := newEnvOn(t, configsvc.Validating(reads, format.Validator{}), mods...)
	e.mustService("orders", nil)
	e.mustService("billing", nil)
	return e, reads
}

// pinsClient returns a client of url with token.
func pinsClient(t *testing.T, url, token string, hc *http.Client) *api.Client {
	t.Helper()
	c, err := api.New(api.Config{Servers: []string{url}, Token: token, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nextPins returns the next event of ch, failing after wait.
func nextPins(t *testing.T, ch <-chan api.PinsEvent, wait time.Duration, what string) api.PinsEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("%s: the pins stream ended", what)
		}
		return ev
	case <-time.After(wait):
		t.Fatalf("%s: no pins event within %v", what, wait)
	}
	return api.PinsEvent{}
}

// pinIDs returns the ids of the pins of ev with their targets, failing on
// an error event.
func pinIDs(t *testing.T, ev api.PinsEvent, what string) map[string]map[string]string {
	t.Helper()
	if ev.Err != nil {
		t.Fatalf("%s: stream error %v", what, ev.Err)
	}
	out := map[string]map[string]string{}
	for _, p := range ev.Pins {
		out[p.ID] = p.Targets
	}
	return out
}

// mustPin creates a pin through e's API.
func (e *testEnv) mustPin(targets map[string]string) api.Pin {
	e.t.Helper()
	var p api.Pin
	resp := e.must(http.StatusCreated, req{method: "POST", path: "/v1/pins", token: e.admin, body: map[string]any{"targets": targets}})
	if err := json.Unmarshal(resp.body, &p); err != nil {
		e.t.Fatalf("decode %s: %v", resp.body, err)
	}
	return p
}

// TestPinsStreamsShareOneStoreRead: the pins streams of a server share one
// reader of the stored pins, so that ten streams open for three polling
// intervals read the store about three times, not thirty (each stream
// polled the store on its own, once per interval).
func TestPinsStreamsShareOneStoreRead(t *testing.T) {
	e, reads := newPinsEnv(t)
	e.mustPin(map[string]string{"orders": "orders-1"})
	c := pinsClient(t, e.http.URL, e.admin, e.http.Client())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const streams = 10
	chans := make([]<-chan api.PinsEvent, streams)
	for i := range chans {
		chans[i] = c.WatchPins(ctx)
		if got := pinIDs(t, nextPins(t, chans[i], 10*time.Second, "open"), "open"); len(got) != 1 {
			t.Fatalf("stream %d opened with %v, want the one pin", i, got)
		}
	}
	const intervals = 3
	before := reads.n.Load()
	time.Sleep(intervals*PinsPollInterval + PinsPollInterval/2)
	got := reads.n.Load() - before
	if got < intervals-1 || got > intervals+1 {
		t.Fatalf("%d pins streams open for %.1f polling intervals read the stored pins %d times, want about %d (one reader for all)", streams, intervals+0.5, got, intervals)
	}
	for i, ch := range chans {
		select {
		case ev := <-ch:
			t.Fatalf("stream %d sent %+v while nothing changed", i, ev)
		default:
		}
	}
}

// TestPinsStreamsSeeChanges: every open pins stream receives a pin created
// or revoked through its server at once (well within PinsPollInterval), and
// one created directly in the store (as another server does) within the
// interval, over HTTP/1.1 (streams on their taken-over connections) and
// HTTP/2 (streams on their requests' goroutines).
func TestPinsStreamsSeeChanges(t *testing.T) {
	e, _ := newPinsEnv(t)
	h2 := httptest.NewUnstartedServer(e.srv)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	t.Cleanup(h2.Close)
	for _, tr := range []struct {
		name string
		url  string
		hc   *http.Client
	}{{"http1", e.http.URL, e.http.Client()}, {"http2", h2.URL, h2.Client()}} {
		t.Run(tr.name, func(t *testing.T) {
			e := e.withT(t)
			c := pinsClient(t, tr.url, e.admin, tr.hc)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			const streams = 5
			chans := make([]<-chan api.PinsEvent, streams)
			var start map[string]map[string]string
			for i := range chans {
				chans[i] = c.WatchPins(ctx)
				start = pinIDs(t, nextPins(t, chans[i], 10*time.Second, "open"), "open")
			}
			each := func(what string, wait time.Duration, want func(map[string]map[string]string) bool) {
				t.Helper()
				for i, ch := range chans {
					got := pinIDs(t, nextPins(t, ch, wait, what), what)
					if !want(got) {
						t.Fatalf("%s: stream %d has %v", what, i, got)
					}
				}
			}
			p := e.mustPin(map[string]string{"orders": "orders-1"})
			each("a pin created through the server", PinsPollInterval/2, func(got map[string]map[string]string) bool {
				return len(got) == len(start)+1 && got[p.ID]["orders"] == "orders-1"
			})
			e.must(http.StatusOK, req{method: "DELETE", path: "/v1/pins/" + p.ID, token: e.admin})
			each("a pin revoked through the server", PinsPollInterval/2, func(got map[string]map[string]string) bool {
				return len(got) == len(start)+1
			})
			_, other, err := access.NewPins(e.store.Records(), access.PinsConfig{Now: e.clock.Now}).Create(ctx, access.PinSpec{Targets: map[string]string{"billing": "billing-1"}}, "another server")
			if err != nil {
				t.Fatal(err)
			}
			each("a pin created in the store", PinsPollInterval+PinsPollInterval/2, func(got map[string]map[string]string) bool {
				return len(got) == len(start)+2 && got[other.ID]["billing"] == "billing-1"
			})
		})
	}
}

// TestPinsStreamsShowEachPrincipalItsView: streams of different principals
// share the reader yet each sees only the targets its principal may list,
// and a stream is sent nothing for a change outside its view.
func TestPinsStreamsShowEachPrincipalItsView(t *testing.T) {
	e, _ := newPinsEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	admin := pinsClient(t, e.http.URL, e.admin, e.http.Client()).WatchPins(ctx)
	orders := pinsClient(t, e.http.URL, e.mustToken("proxy:orders"), e.http.Client()).WatchPins(ctx)
	pinIDs(t, nextPins(t, admin, 10*time.Second, "admin open"), "admin open")
	pinIDs(t, nextPins(t, orders, 10*time.Second, "proxy:orders open"), "proxy:orders open")
	onBilling := e.mustPin(map[string]string{"billing": "billing-1"})
	if got := pinIDs(t, nextPins(t, admin, 5*time.Second, "billing pin"), "billing pin"); len(got) != 1 || got[onBilling.ID] == nil {
		t.Fatalf("the admin stream has %v, want the billing pin", got)
	}
	onBoth := e.mustPin(map[string]string{"orders": "orders-2", "billing": "billing-2"})
	got := pinIDs(t, nextPins(t, orders, 5*time.Second, "pin on both"), "pin on both")
	if len(got) != 1 || len(got[onBoth.ID]) != 1 || got[onBoth.ID]["orders"] != "orders-2" {
		t.Fatalf("the proxy:orders stream's next event has %v, want only the orders target of %s (nothing sent for the billing pin)", got, onBoth.ID)
	}
	if got := pinIDs(t, nextPins(t, admin, 5*time.Second, "pin on both"), "pin on both"); len(got) != 2 || len(got[onBoth.ID]) != 2 {
		t.Fatalf("the admin stream has %v, want both pins with all their targets", got)
	}
}

// TestFaultPinsStoreDownErrorOnceThenList: while the stored pins cannot be
// read, every pins stream is sent one stream-error event (not one per
// read), stays open, and is sent the list again once the store answers.
func TestFaultPinsStoreDownErrorOnceThenList(t *testing.T) {
	e, reads := newPinsEnv(t)
	p := e.mustPin(map[string]string{"orders": "orders-1"})
	c := pinsClient(t, e.http.URL, e.admin, e.http.Client())
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	chans := []<-chan api.PinsEvent{c.WatchPins(ctx), c.WatchPins(ctx)}
	for _, ch := range chans {
		pinIDs(t, nextPins(t, ch, 10*time.Second, "open"), "open")
	}
	reads.down.Store(true)
	for i, ch := range chans {
		if ev := nextPins(t, ch, 2*PinsPollInterval, "store down"); ev.Err == nil {
			t.Fatalf("stream %d: %+v with the store down, want a stream error", i, ev)
		}
	}
	downFrom := reads.n.Load()
	testkit.EventuallyTrue(t, 5*time.Second, "the pins read again while the store is down", func() bool { return reads.n.Load() >= downFrom+2 })
	reads.down.Store(false)
	for i, ch := range chans {
		// The next event is the list: no second error for the reads that failed meanwhile.
		if got := pinIDs(t, nextPins(t, ch, 2*PinsPollInterval, "store back"), "store back"); len(got) != 1 || got[p.ID] == nil {
			t.Fatalf("stream %d: %v once the store answers, want the pin again", i, got)
		}
	}
}

// TestPinsReaderStopsWithTheLastStream: once the last pins stream has
// left, the shared reader stops (it reads the store no more), and the next
// stream starts it again.
func TestPinsReaderStopsWithTheLastStream(t *testing.T) {
	e, reads := newPinsEnv(t)
	c := pinsClient(t, e.http.URL, e.admin, e.http.Client())
	running := func() bool {
		e.srv.pinsHub.mu.Lock()
		defer e.srv.pinsHub.mu.Unlock()
		return e.srv.pinsHub.running
	}
	for round := range 2 {
		ctx, cancel := context.WithCancel(t.Context())
		chans := []<-chan api.PinsEvent{c.WatchPins(ctx), c.WatchPins(ctx), c.WatchPins(ctx)}
		for _, ch := range chans {
			pinIDs(t, nextPins(t, ch, 10*time.Second, "open"), "open")
		}
		if !running() {
			t.Fatalf("round %d: no pins reader with three streams open", round)
		}
		cancel()
		testkit.EventuallyTrue(t, 3*PinsPollInterval, "the pins reader stopped after the last stream left", func() bool { return !running() })
		n := reads.n.Load()
		time.Sleep(PinsPollInterval + PinsPollInterval/2)
		if got := reads.n.Load() - n; got != 0 {
			t.Fatalf("round %d: the pins were read %d times with no stream open", round, got)
		}
	}
}

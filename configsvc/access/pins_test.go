package access

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// countingRecords counts Gets and can fail them, to see what ResolvePin's
// cache saves and what it keeps.
type countingRecords struct {
	*memRecords
	mu   sync.Mutex
	gets int
	fail error
}

func (c *countingRecords) Get(ctx context.Context, coll, id string) ([]byte, error) {
	c.mu.Lock()
	c.gets++
	fail := c.fail
	c.mu.Unlock()
	if fail != nil {
		return nil, fail
	}
	return c.memRecords.Get(ctx, coll, id)
}

func (c *countingRecords) reads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gets
}

func (c *countingRecords) setFail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail = err
}

func mustPin(t *testing.T, ps *Pins, spec PinSpec) (string, configsvc.Pin) {
	t.Helper()
	token, pin, err := ps.Create(context.Background(), spec, "dev")
	if err != nil {
		t.Fatalf("Create(%+v): %v", spec, err)
	}
	return token, pin
}

func TestPinsCreateListRevoke(t *testing.T) {
	ctx := context.Background()
	recs, clk := newMemRecords(), newClock()
	ps := NewPins(recs, PinsConfig{Now: clk.Now})
	targets := map[string]string{"orders": "orders-7", "payments": "payments-2"}
	token, pin := mustPin(t, ps, PinSpec{Targets: targets, TTL: time.Hour, Note: "debug"})

	if !strings.HasPrefix(token, PinTokenPrefix) || len(token) != tokenLen {
		t.Fatalf("token of %d chars starting %q; want %d chars with %q", len(token), token[:4], tokenLen, PinTokenPrefix)
	}
	if pin.ID != HashToken(token)[:12] || pin.CreatedBy != "dev" || pin.Note != "debug" ||
		!pin.Created.Equal(clk.Now()) || pin.Expires.Sub(pin.Created) != time.Hour || pin.Targets["payments"] != "payments-2" {
		t.Fatalf("pin = %+v", pin)
	}
	targets["orders"] = "changed-after-create"
	if pin.Targets["orders"] != "orders-7" {
		t.Fatal("the pin shares its targets map with the caller")
	}
	// Stored under the token's hash; the token itself is stored nowhere.
	if _, err := recs.Get(ctx, PinsCollection, HashToken(token)); err != nil {
		t.Fatalf("record under the token's hash: %v", err)
	}
	for id, d := range recs.data[PinsCollection] {
		if strings.Contains(id, token) || bytes.Contains(d, []byte(token[len(PinTokenPrefix):])) {
			t.Fatalf("record %s contains the token", id)
		}
	}

	clk.Advance(time.Second)
	_, second := mustPin(t, ps, PinSpec{Targets: map[string]string{"orders": "orders-1"}})
	if second.Expires.Sub(second.Created) != configsvc.DefaultPinTTL {
		t.Errorf("TTL 0 gave a lifetime of %s, want the default %s", second.Expires.Sub(second.Created), configsvc.DefaultPinTTL)
	}
	list, err := ps.List(ctx)
	if err != nil || len(list) != 2 || list[0].ID != second.ID || list[1].ID != pin.ID {
		t.Fatalf("List = %+v, %v; want the newest first", list, err)
	}
	got, err := ps.Get(ctx, pin.ID)
	if err != nil || got.ID != pin.ID || got.Targets["orders"] != "orders-7" {
		t.Fatalf("Get = %+v, %v", got, err)
	}

	revoked, err := ps.Revoke(ctx, pin.ID, "admin")
	if err != nil || !revoked.Revoked || revoked.RevokedBy != "admin" {
		t.Fatalf("Revoke = %+v, %v", revoked, err)
	}
	again, err := ps.Revoke(ctx, pin.ID, "someone-else")
	if err != nil || again.RevokedBy != "admin" {
		t.Fatalf("second Revoke = %+v, %v; want the first revocation unchanged", again, err)
	}
	if got, _ := ps.Get(ctx, pin.ID); !got.Revoked {
		t.Fatalf("stored pin after Revoke = %+v", got)
	}
	if _, err := ps.Revoke(ctx, "0123456789ab", "admin"); !errors.Is(err, configsvc.ErrNotFound) {
		t.Errorf("revoke an unknown id: %v, want ErrNotFound", err)
	}
	var fe *configsvc.FieldError
	for _, id := range []string{"", "ABCDEF012345", "0123456789abc", "../etc/passw"} {
		if _, err := ps.Get(ctx, id); !errors.As(err, &fe) || fe.Field != "id" {
			t.Errorf("Get(%q): %v, want a FieldError on id", id, err)
		}
	}
}

func TestPinSpecValidate(t *testing.T) {
	one := map[string]string{"orders": "orders-1"}
	many := map[string]string{}
	for i := range configsvc.MaxPinTargets + 1 {
		many[fmt.Sprintf("svc-%d", i)] = "i-1"
	}
	tests := []struct {
		name      string
		spec      PinSpec
		wantField string // "" for a valid spec
	}{
		{"valid", PinSpec{Targets: one, TTL: configsvc.MaxPinTTL, Note: strings.Repeat("n", configsvc.MaxPinNote)}, ""},
		{"no targets", PinSpec{}, "targets"},
		{"too many targets", PinSpec{Targets: many}, "targets"},
		{"bad service", PinSpec{Targets: map[string]string{"Orders!": "o-1"}}, "service"},
		{"bad instance", PinSpec{Targets: map[string]string{"orders": "../x"}}, "instance"},
		{"negative ttl", PinSpec{Targets: one, TTL: -time.Minute}, "ttl"},
		{"ttl over the limit", PinSpec{Targets: one, TTL: configsvc.MaxPinTTL + time.Second}, "ttl"},
		{"note too long", PinSpec{Targets: one, Note: strings.Repeat("n", configsvc.MaxPinNote+1)}, "note"},
		{"note with a control character", PinSpec{Targets: one, Note: "a\nb"}, "note"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.Validate()
			var fe *configsvc.FieldError
			switch {
			case tc.wantField == "" && err != nil:
				t.Fatalf("Validate = %v, want nil", err)
			case tc.wantField != "" && (!errors.As(err, &fe) || fe.Field != tc.wantField):
				t.Fatalf("Validate = %v, want a FieldError on %q", err, tc.wantField)
			}
			// Create validates the same way and writes nothing for a bad spec.
			recs := newMemRecords()
			_, _, cerr := NewPins(recs, PinsConfig{}).Create(context.Background(), tc.spec, "dev")
			if (cerr == nil) != (err == nil) {
				t.Fatalf("Create = %v, Validate = %v", cerr, err)
			}
			if err != nil && len(recs.data[PinsCollection]) != 0 {
				t.Fatal("Create stored a pin for an invalid spec")
			}
		})
	}
}

func TestParsePinTTL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, true}, {"90s", 90 * time.Second, true}, {configsvc.MaxPinTTL.String(), configsvc.MaxPinTTL, true},
		{"soon", 0, false}, {"0s", 0, false}, {"-1m", 0, false}, {(configsvc.MaxPinTTL + time.Minute).String(), 0, false},
	} {
		d, err := ParsePinTTL(tc.in)
		var fe *configsvc.FieldError
		if tc.ok && (err != nil || d != tc.want) {
			t.Errorf("ParsePinTTL(%q) = %v, %v; want %v", tc.in, d, err, tc.want)
		}
		if !tc.ok && (!errors.As(err, &fe) || fe.Field != "ttl" || fe.Value != tc.in) {
			t.Errorf("ParsePinTTL(%q) = %v, %v; want a FieldError on ttl naming the value", tc.in, d, err)
		}
	}
}

func TestPinsCheckFollowsTheClock(t *testing.T) {
	clk := newClock()
	ps := NewPins(newMemRecords(), PinsConfig{Now: clk.Now})
	_, pin := mustPin(t, ps, PinSpec{Targets: map[string]string{"orders": "orders-1"}, TTL: time.Minute})
	if err := ps.Check(pin); err != nil {
		t.Fatalf("new pin: %v", err)
	}
	clk.Advance(time.Minute - time.Nanosecond)
	if err := ps.Check(pin); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
	clk.Advance(time.Nanosecond)
	if err := ps.Check(pin); !errors.Is(err, configsvc.ErrPinExpired) {
		t.Fatalf("at expiry: %v, want ErrPinExpired", err)
	}
	pin.Revoked = true
	if err := ps.Check(pin); !errors.Is(err, configsvc.ErrPinRevoked) {
		t.Fatalf("revoked: %v, want ErrPinRevoked", err)
	}
}

func TestPinsSweep(t *testing.T) {
	for _, tc := range []struct {
		name      string
		retention time.Duration
		want      time.Duration // the retention in force
	}{
		{"default retention", 0, DefaultPinRetention},
		{"configured retention", time.Hour, time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			clk := newClock()
			ps := NewPins(newMemRecords(), PinsConfig{Now: clk.Now, Retention: tc.retention})
			ttl := map[string]time.Duration{"old": time.Minute, "recent": 2 * time.Minute, "long": configsvc.MaxPinTTL}
			ids := map[string]string{}
			for name, d := range ttl {
				_, p := mustPin(t, ps, PinSpec{Targets: map[string]string{"orders": "orders-1"}, TTL: d})
				ids[p.ID] = name
			}
			// "old" expired just over the retention ago, "recent" just under.
			clk.Advance(time.Minute + tc.want + 30*time.Second)
			n, err := ps.Sweep(ctx)
			if err != nil || n != 1 {
				t.Fatalf("Sweep = %d, %v; want 1", n, err)
			}
			list, _ := ps.List(ctx)
			var left []string
			for _, p := range list {
				left = append(left, ids[p.ID])
			}
			if len(left) != 2 || strings.Contains(strings.Join(left, ","), "old") {
				t.Fatalf("left after sweep: %v; want recent and long", left)
			}
			if n, err := ps.Sweep(ctx); err != nil || n != 0 {
				t.Fatalf("second Sweep = %d, %v; want 0", n, err)
			}
		})
	}
}

func TestPinsResolveCache(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	recs := &countingRecords{memRecords: newMemRecords()}
	// admin is the API server's Pins; proxy a proxy's, on the same store.
	admin := NewPins(recs, PinsConfig{Now: clk.Now})
	proxy := NewPins(recs, PinsConfig{Now: clk.Now, CacheTTL: 2 * time.Second})
	token, created := mustPin(t, admin, PinSpec{Targets: map[string]string{"orders": "orders-2"}, TTL: time.Minute})

	pin, err := proxy.ResolvePin(ctx, token)
	if err != nil || pin.ID != created.ID || pin.Targets["orders"] != "orders-2" {
		t.Fatalf("ResolvePin = %+v, %v", pin, err)
	}
	unknown := PinTokenPrefix + strings.Repeat("A", tokenLen-len(PinTokenPrefix))
	if _, err := proxy.ResolvePin(ctx, unknown); !errors.Is(err, configsvc.ErrPinUnknown) {
		t.Fatalf("unknown token: %v", err)
	}
	for i := 0; i < 5; i++ {
		_, _ = proxy.ResolvePin(ctx, token)
		_, _ = proxy.ResolvePin(ctx, unknown)
	}
	if n := recs.reads(); n != 2 {
		t.Fatalf("store read %d times, want 2 (one per token; the rest cached, absence too)", n)
	}
	for _, bad := range []string{"", "tok", strings.Repeat("x", tokenLen), "slc_" + token[4:]} {
		if _, err := proxy.ResolvePin(ctx, bad); !errors.Is(err, configsvc.ErrPinUnknown) {
			t.Errorf("malformed token %q: %v, want ErrPinUnknown", bad, err)
		}
	}
	if n := recs.reads(); n != 2 {
		t.Fatalf("malformed tokens read the store (%d reads, want 2)", n)
	}

	if _, err := admin.Revoke(ctx, created.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := proxy.ResolvePin(ctx, token); err != nil {
		t.Fatalf("within the cache TTL the cached pin still holds: %v", err)
	}
	clk.Advance(2 * time.Second)
	_, err = proxy.ResolvePin(ctx, token)
	if !errors.Is(err, configsvc.ErrPinRevoked) {
		t.Fatalf("a revocation must show once the cache TTL passed: %v", err)
	}
	if strings.Contains(err.Error(), token) || !strings.Contains(err.Error(), created.ID) {
		t.Errorf("error %q should name the pin's id, never its token", err)
	}

	// Expiry is checked on every resolution, cached or not.
	token2, _ := mustPin(t, admin, PinSpec{Targets: map[string]string{"orders": "orders-2"}, TTL: time.Second})
	if _, err := proxy.ResolvePin(ctx, token2); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	if _, err := proxy.ResolvePin(ctx, token2); !errors.Is(err, configsvc.ErrPinExpired) {
		t.Fatalf("cached pin past its expiry: %v, want ErrPinExpired", err)
	}

	// Store trouble is reported as such (not "unknown") and not cached.
	recs.setFail(fmt.Errorf("zk down: %w", configsvc.ErrUnavailable))
	clk.Advance(3 * time.Second)
	if _, err := proxy.ResolvePin(ctx, token); !errors.Is(err, configsvc.ErrUnavailable) || errors.Is(err, configsvc.ErrPinUnknown) {
		t.Fatalf("store down: %v, want ErrUnavailable (not unknown)", err)
	}
	recs.setFail(nil)
	if _, err := proxy.ResolvePin(ctx, token); !errors.Is(err, configsvc.ErrPinRevoked) {
		t.Fatalf("store back: %v, want the pin read again", err)
	}
}

func TestPinsRevokeIsSeenAtOnceByItsOwnCache(t *testing.T) {
	ctx := context.Background()
	ps := NewPins(newMemRecords(), PinsConfig{CacheTTL: time.Hour})
	token, pin := mustPin(t, ps, PinSpec{Targets: map[string]string{"orders": "orders-1"}})
	if _, err := ps.ResolvePin(ctx, token); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Revoke(ctx, pin.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.ResolvePin(ctx, token); !errors.Is(err, configsvc.ErrPinRevoked) {
		t.Fatalf("after Revoke on the same Pins: %v, want ErrPinRevoked", err)
	}
}

// TestAttackPinFloodEvictsValidPins: a flood of made-up, well-formed pin
// tokens costs one store read each and bounded memory, and must not flush
// the cached pins in use (which would send every pinned request to the
// store).
func TestAttackPinFloodEvictsValidPins(t *testing.T) {
	ctx := context.Background()
	recs := &countingRecords{memRecords: newMemRecords()}
	const max = 3
	ps := NewPins(recs, PinsConfig{MaxCacheEntries: max, CacheTTL: time.Hour})
	token, _ := mustPin(t, ps, PinSpec{Targets: map[string]string{"orders": "orders-1"}})
	if _, err := ps.ResolvePin(ctx, token); err != nil {
		t.Fatal(err)
	}
	for i := range 10 * max {
		made := fmt.Sprintf("%s%042dA", PinTokenPrefix, i) // a flood of made-up tokens
		if _, err := ps.ResolvePin(ctx, made); !errors.Is(err, configsvc.ErrPinUnknown) {
			t.Fatalf("made-up token: %v", err)
		}
		ps.mu.Lock()
		n, u := len(ps.cache), len(ps.unknown)
		ps.mu.Unlock()
		if n > max || u > max {
			t.Fatalf("caches hold %d found and %d unknown entries, bound %d each", n, u, max)
		}
	}
	before := recs.reads()
	if _, err := ps.ResolvePin(ctx, token); err != nil {
		t.Fatal(err)
	}
	if recs.reads() != before {
		t.Fatal("the flood of made-up tokens evicted the cached valid pin: it was read from the store again")
	}
	// A repeated unknown token is still answered from the cache.
	made := fmt.Sprintf("%s%042dA", PinTokenPrefix, 10*max-1)
	before = recs.reads()
	if _, err := ps.ResolvePin(ctx, made); !errors.Is(err, configsvc.ErrPinUnknown) || recs.reads() != before {
		t.Fatalf("recent unknown token: %v, %d store reads; want ErrPinUnknown from the cache", err, recs.reads()-before)
	}
}

// TestPinsFoundCacheIsBounded: more pins in use than the cache holds keep
// it at its bound; each still resolves.
func TestPinsFoundCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	const max = 3
	ps := NewPins(newMemRecords(), PinsConfig{MaxCacheEntries: max, CacheTTL: time.Hour})
	for range 3 * max {
		token, pin := mustPin(t, ps, PinSpec{Targets: map[string]string{"orders": "orders-1"}})
		got, err := ps.ResolvePin(ctx, token)
		if err != nil || got.ID != pin.ID {
			t.Fatalf("ResolvePin = %+v, %v", got, err)
		}
		ps.mu.Lock()
		n := len(ps.cache)
		ps.mu.Unlock()
		if n > max {
			t.Fatalf("cache holds %d pins, bound %d", n, max)
		}
	}
}

// TestAttackMalformedSecretsSkipStore: values of the right length and
// prefix but not base64url of 32 bytes are refused as malformed, without a
// store read; every secret newSecret mints is well formed.
func TestAttackMalformedSecretsSkipStore(t *testing.T) {
	for range 2000 {
		if s := newSecret(PinTokenPrefix); !wellFormed(s, PinTokenPrefix) {
			t.Fatalf("minted secret %q is not well formed", s)
		}
	}
	ctx := context.Background()
	recs := &countingRecords{memRecords: newMemRecords()}
	ps := NewPins(recs, PinsConfig{})
	body := strings.Repeat("A", 42)
	for _, bad := range []string{
		PinTokenPrefix + strings.Repeat("!", 43), PinTokenPrefix + body + "=", PinTokenPrefix + body + "B",
		PinTokenPrefix + strings.Repeat("\u00e9", 21) + "A", PinTokenPrefix + "+" + body[1:] + "A", PinTokenPrefix + body[1:] + " A",
	} {
		if _, err := ps.ResolvePin(ctx, bad); !errors.Is(err, configsvc.ErrPinUnknown) {
			t.Errorf("ResolvePin(%q) = %v, want ErrPinUnknown", bad, err)
		}
	}
	if n := recs.reads(); n != 0 {
		t.Fatalf("malformed pin tokens read the store %d times", n)
	}
}

func TestPinsNegativeCacheTTLReadsEveryTime(t *testing.T) {
	ctx := context.Background()
	recs := &countingRecords{memRecords: newMemRecords()}
	ps := NewPins(recs, PinsConfig{CacheTTL: -1})
	token, _ := mustPin(t, ps, PinSpec{Targets: map[string]string{"orders": "orders-1"}})
	for range 3 {
		if _, err := ps.ResolvePin(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	if n := recs.reads(); n != 3 {
		t.Fatalf("store read %d times, want 3 (no cache)", n)
	}
}

// TestPinRecordFormat: pins written before pins moved to access (JSON of
// router.Pin) still resolve and list, and new records keep the same keys.
func TestPinRecordFormat(t *testing.T) {
	ctx := context.Background()
	recs, clk := newMemRecords(), newClock()
	ps := NewPins(recs, PinsConfig{Now: clk.Now})
	token := PinTokenPrefix + strings.Repeat("B", tokenLen-len(PinTokenPrefix)-1) + "A" // a shape newSecret can mint
	old := `{"id":"` + HashToken(token)[:12] + `","targets":{"orders":"orders-2"},"note":"n","created_by":"dev",` +
		`"created":"2026-01-02T03:00:00Z","expires":"2026-01-02T04:00:00Z","revoked":true,"revoked_by":"admin"}`
	if err := recs.Put(ctx, PinsCollection, HashToken(token), []byte(old)); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.ResolvePin(ctx, token); !errors.Is(err, configsvc.ErrPinRevoked) {
		t.Fatalf("old record: %v, want it read as revoked", err)
	}
	list, err := ps.List(ctx)
	if err != nil || len(list) != 1 || list[0].RevokedBy != "admin" || list[0].Targets["orders"] != "orders-2" || list[0].CreatedBy != "dev" {
		t.Fatalf("List = %+v, %v", list, err)
	}
	fresh, _ := mustPin(t, ps, PinSpec{Targets: map[string]string{"orders": "orders-1"}, Note: "n"})
	data, _ := recs.Get(ctx, PinsCollection, HashToken(fresh))
	for _, key := range []string{`"id":`, `"targets":`, `"note":`, `"created_by":`, `"created":`, `"expires":`} {
		if !bytes.Contains(data, []byte(key)) {
			t.Errorf("new record %s lacks %s", data, key)
		}
	}
	if bytes.Contains(data, []byte(`"revoked`)) {
		t.Errorf("an active pin's record %s carries revoked fields (omitempty)", data)
	}
}

// TestPinsConcurrentResolve exercises the cache under -race.
func TestPinsConcurrentResolve(t *testing.T) {
	ctx := context.Background()
	ps := NewPins(newMemRecords(), PinsConfig{MaxCacheEntries: 4})
	token, pin := mustPin(t, ps, PinSpec{Targets: map[string]string{"orders": "orders-1"}})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if g == 0 && i == 25 {
					_, _ = ps.Revoke(ctx, pin.ID, "admin")
				}
				_, _ = ps.ResolvePin(ctx, fmt.Sprintf("%s%043d", PinTokenPrefix, g*100+i))
				if _, err := ps.ResolvePin(ctx, token); err != nil && !errors.Is(err, configsvc.ErrPinRevoked) {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := ps.ResolvePin(ctx, token); !errors.Is(err, configsvc.ErrPinRevoked) {
		t.Fatalf("after the revocation: %v", err)
	}
}

package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// PinTokenPrefix starts every pin token; the rest is 32 random bytes,
// base64url without padding.
const PinTokenPrefix = "slp_"

// Defaults for the zero values of PinsConfig.
const (
	// DefaultPinCacheTTL is how long ResolvePin reuses a looked-up pin: how
	// long a revocation may take to reach a proxy.
	DefaultPinCacheTTL = 2 * time.Second
	// DefaultPinCacheEntries bounds each of ResolvePin's two caches (pins
	// found, tokens found unknown).
	DefaultPinCacheEntries = 10000
	// DefaultPinRetention is how long an expired pin stays listed before
	// Sweep deletes it.
	DefaultPinRetention = 24 * time.Hour
)

// PinsConfig tunes Pins. The zero value is the default.
type PinsConfig struct {
	// Now is the clock (nil: time.Now): creation times, and expiry, which
	// ResolvePin checks on every call, cached or not.
	Now func() time.Time
	// CacheTTL is how long ResolvePin reuses a looked-up pin (or its
	// absence); 0 means DefaultPinCacheTTL, negative disables the cache.
	CacheTTL time.Duration
	// MaxCacheEntries bounds each of the two caches, pins found and tokens
	// found unknown; 0 means DefaultPinCacheEntries. They are kept apart so
	// that a flood of made-up tokens (which costs store reads, never
	// memory: a full unknown-token cache is emptied) cannot evict the pins
	// in use. A full cache of found pins drops the entries older than
	// CacheTTL, else one entry.
	MaxCacheEntries int
	// Retention is how long Sweep keeps expired pins (listed as expired);
	// 0 means DefaultPinRetention.
	Retention time.Duration
}

// PinSpec is what a pin's creator chooses.
type PinSpec struct {
	// Targets maps 1 to configsvc.MaxPinTargets services to an instance id
	// each.
	Targets map[string]string
	// TTL is the pin's lifetime, at most configsvc.MaxPinTTL; 0 means
	// configsvc.DefaultPinTTL.
	TTL time.Duration
	// Note is a free text of at most configsvc.MaxPinNote printable bytes.
	Note string
}

// Validate returns a *configsvc.FieldError naming the first field of s out
// of its limits (targets, service, instance, ttl, note), or nil.
func (s PinSpec) Validate() error {
	if len(s.Targets) == 0 || len(s.Targets) > configsvc.MaxPinTargets {
		return &configsvc.FieldError{Field: "targets", Msg: fmt.Sprintf("must map 1 to %d services to instance ids", configsvc.MaxPinTargets)}
	}
	for _, svc := range slices.Sorted(maps.Keys(s.Targets)) { // the same error for the same spec
		if err := configsvc.ValidateServiceName(svc); err != nil {
			return err
		}
		if err := configsvc.ValidateInstanceID(s.Targets[svc]); err != nil {
			return err
		}
	}
	if s.TTL < 0 || s.TTL > configsvc.MaxPinTTL {
		return pinTTLError(s.TTL.String())
	}
	if !printable(s.Note, configsvc.MaxPinNote) {
		return &configsvc.FieldError{Field: "note", Value: s.Note, Msg: fmt.Sprintf("must be at most %d printable characters", configsvc.MaxPinNote)}
	}
	return nil
}

// ParsePinTTL parses a pin lifetime in time.ParseDuration's syntax ("30m");
// "" gives 0, which PinSpec takes for configsvc.DefaultPinTTL. Errors: a
// *configsvc.FieldError (field "ttl") for text that is not a positive
// duration or one over configsvc.MaxPinTTL.
func ParsePinTTL(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > configsvc.MaxPinTTL {
		return 0, pinTTLError(s)
	}
	return d, nil
}

func pinTTLError(value string) error {
	return &configsvc.FieldError{Field: "ttl", Value: value, Msg: fmt.Sprintf("must be a duration such as \"30m\", at most %s", configsvc.MaxPinTTL)}
}

// Pins is the one home of debug pins (configsvc.Pin): it mints and stores
// them (collection "pins", key HashToken(token), value JSON), lists,
// revokes and sweeps them for the admin API, and resolves tokens for the
// proxy with a short cache, so that a busy proxy does not read the store per
// request while a revocation still reaches every proxy within the cache TTL.
// It is safe for concurrent use; all state but the cache is in the store, so
// every server and proxy on one store sees the same pins.
type Pins struct {
	records   configsvc.RecordStore
	now       func() time.Time
	ttl       time.Duration
	max       int
	retention time.Duration

	mu      sync.Mutex
	cache   map[string]pinEntry  // by record key: pins found (active or not)
	unknown map[string]time.Time // by record key: when a lookup found no pin
}

type pinEntry struct {
	pin     configsvc.Pin
	fetched time.Time
}

// NewPins returns a Pins on records, tuned by cfg.
func NewPins(records configsvc.RecordStore, cfg PinsConfig) *Pins {
	ps := &Pins{records: records, now: cfg.Now, ttl: cfg.CacheTTL, max: cfg.MaxCacheEntries, retention: cfg.Retention, cache: map[string]pinEntry{}, unknown: map[string]time.Time{}}
	if ps.now == nil {
		ps.now = time.Now
	}
	if ps.ttl == 0 {
		ps.ttl = DefaultPinCacheTTL
	}
	if ps.max <= 0 {
		ps.max = DefaultPinCacheEntries
	}
	if ps.retention <= 0 {
		ps.retention = DefaultPinRetention
	}
	return ps
}

// Create mints a pin for spec, created by createdBy (a principal's name).
// It returns the token, to be shown once, and the stored pin. Errors:
// *configsvc.FieldError for a spec out of its limits; store errors wrapped.
// Create does not authorize: the caller checks that createdBy may pin every
// target.
func (ps *Pins) Create(ctx context.Context, spec PinSpec, createdBy string) (string, configsvc.Pin, error) {
	if err := spec.Validate(); err != nil {
		return "", configsvc.Pin{}, err
	}
	ttl := spec.TTL
	if ttl == 0 {
		ttl = configsvc.DefaultPinTTL
	}
	targets := make(map[string]string, len(spec.Targets))
	for svc, id := range spec.Targets {
		targets[svc] = id
	}
	token := newSecret(PinTokenPrefix)
	hash := HashToken(token)
	now := ps.now().UTC()
	pin := configsvc.Pin{ID: hash[:12], Targets: targets, Note: spec.Note, CreatedBy: createdBy, Created: now, Expires: now.Add(ttl)}
	if err := ps.put(ctx, hash, pin); err != nil {
		return "", configsvc.Pin{}, err
	}
	return token, pin, nil
}

// List returns every stored pin, active or not, newest first. Records that
// do not decode are left out.
func (ps *Pins) List(ctx context.Context) ([]configsvc.Pin, error) {
	all, err := ps.all(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]configsvc.Pin, 0, len(all))
	for _, p := range all {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// ByKey returns every stored pin that decodes, active or not, by its
// record key (HashToken of its token): what a proxy mirrors to resolve
// tokens without the store (router/proxyserver over the admin API). A key
// does not reveal its token. Store errors wrapped.
func (ps *Pins) ByKey(ctx context.Context) (map[string]configsvc.Pin, error) {
	return ps.all(ctx)
}

// Get returns the pin whose id is id (12 hex digits). Errors:
// *configsvc.FieldError for a malformed id; configsvc.ErrNotFound (wrapped)
// when no pin has it; store errors wrapped.
func (ps *Pins) Get(ctx context.Context, id string) (configsvc.Pin, error) {
	_, p, err := ps.byID(ctx, id)
	return p, err
}

// Revoke marks the pin whose id is id revoked by by and returns it; a pin
// already revoked is returned unchanged. The pin is kept until Sweep, so
// that proxies answer "revoked" rather than "unknown"; proxies see the
// revocation within their cache TTL. Errors as for Get. Revoke does not
// authorize: the caller checks that by may pin every target.
func (ps *Pins) Revoke(ctx context.Context, id, by string) (configsvc.Pin, error) {
	key, p, err := ps.byID(ctx, id)
	if err != nil || p.Revoked {
		return p, err
	}
	p.Revoked, p.RevokedBy = true, by
	if err := ps.put(ctx, key, p); err != nil {
		return configsvc.Pin{}, err
	}
	ps.mu.Lock()
	delete(ps.cache, key)
	delete(ps.unknown, key)
	ps.mu.Unlock()
	return p, nil
}

// Check returns p's state now (by the configured clock): nil while active,
// else configsvc.ErrPinRevoked or ErrPinExpired.
func (ps *Pins) Check(p configsvc.Pin) error { return p.Check(ps.now()) }

// Sweep deletes the pins that expired more than the retention ago and
// returns how many it removed. Several servers may sweep at once; a pin
// already gone is not an error.
func (ps *Pins) Sweep(ctx context.Context) (int, error) {
	all, err := ps.all(ctx)
	if err != nil {
		return 0, fmt.Errorf("access: sweep pins: %w", err)
	}
	cutoff, n := ps.now().Add(-ps.retention), 0
	for key, p := range all {
		if !p.Expires.Before(cutoff) {
			continue
		}
		if err := ps.records.Delete(ctx, PinsCollection, key); err != nil && !errors.Is(err, configsvc.ErrNotFound) {
			return n, fmt.Errorf("access: sweep pins: %w", err)
		}
		n++
	}
	return n, nil
}

// ResolvePin returns the active pin created with token; it implements
// router.PinResolver. Errors: configsvc.ErrPinUnknown for a malformed token
// or one no pin was created with; configsvc.ErrPinRevoked or ErrPinExpired
// (wrapped, naming the pin's id) for a pin no longer active at Now; store
// errors wrapped (e.g. configsvc.ErrUnavailable), which are not cached. A
// pin (or its absence) looked up less than CacheTTL ago is not read again.
func (ps *Pins) ResolvePin(ctx context.Context, token string) (configsvc.Pin, error) {
	if !wellFormed(token, PinTokenPrefix) {
		return configsvc.Pin{}, configsvc.ErrPinUnknown
	}
	key := HashToken(token)
	now := ps.now()
	if ps.ttl > 0 {
		ps.mu.Lock()
		e, found := ps.cache[key]
		missed, unknown := ps.unknown[key]
		ps.mu.Unlock()
		if age := now.Sub(e.fetched); found && age >= 0 && age < ps.ttl {
			return activePin(e.pin, nil, now)
		}
		if age := now.Sub(missed); unknown && age >= 0 && age < ps.ttl {
			return configsvc.Pin{}, configsvc.ErrPinUnknown
		}
	}
	pin, err := ps.fetch(ctx, key)
	if err != nil && !errors.Is(err, configsvc.ErrPinUnknown) {
		return configsvc.Pin{}, err // store trouble is not cached
	}
	if ps.ttl > 0 {
		ps.mu.Lock()
		if err != nil {
			if len(ps.unknown) >= ps.max {
				clear(ps.unknown) // amortised O(1) a lookup; the found pins stay
			}
			ps.unknown[key] = now
		} else {
			delete(ps.unknown, key)
			if _, ok := ps.cache[key]; !ok && len(ps.cache) >= ps.max {
				ps.evictLocked(now)
			}
			ps.cache[key] = pinEntry{pin: pin, fetched: now}
		}
		ps.mu.Unlock()
	}
	return activePin(pin, err, now)
}

// evictLocked makes room in the cache of found pins: it drops the entries
// older than the TTL, or, when none is, one entry. Only found pins fill this
// cache, so its churn is bounded by the pins that exist. Caller holds mu.
func (ps *Pins) evictLocked(now time.Time) {
	for k, e := range ps.cache {
		if age := now.Sub(e.fetched); age < 0 || age >= ps.ttl {
			delete(ps.cache, k)
		}
	}
	if len(ps.cache) < ps.max {
		return
	}
	for k := range ps.cache {
		delete(ps.cache, k)
		return
	}
}

// activePin returns pin if it is active at now, else why not.
func activePin(pin configsvc.Pin, err error, now time.Time) (configsvc.Pin, error) {
	if err != nil {
		return configsvc.Pin{}, err
	}
	if err := pin.Check(now); err != nil {
		return configsvc.Pin{}, fmt.Errorf("pin %s: %w", pin.ID, err)
	}
	return pin, nil
}

// fetch reads the pin stored under key; configsvc.ErrPinUnknown (bare, so
// that the proxy's answer reads "unknown pin") when there is none.
func (ps *Pins) fetch(ctx context.Context, key string) (configsvc.Pin, error) {
	data, err := ps.records.Get(ctx, PinsCollection, key)
	if errors.Is(err, configsvc.ErrNotFound) {
		return configsvc.Pin{}, configsvc.ErrPinUnknown
	}
	if err != nil {
		return configsvc.Pin{}, fmt.Errorf("access: look up pin: %w", err)
	}
	var pin configsvc.Pin
	if err := json.Unmarshal(data, &pin); err != nil {
		return configsvc.Pin{}, fmt.Errorf("access: pin record %.12s: %v: %w", key, err, configsvc.ErrInvalid)
	}
	return pin, nil
}

// all returns every pin that decodes, by record key.
func (ps *Pins) all(ctx context.Context) (map[string]configsvc.Pin, error) {
	recs, err := ps.records.List(ctx, PinsCollection)
	if err != nil {
		return nil, fmt.Errorf("access: list pins: %w", err)
	}
	out := make(map[string]configsvc.Pin, len(recs))
	for _, r := range recs {
		var p configsvc.Pin
		if json.Unmarshal(r.Data, &p) == nil {
			out[r.ID] = p
		}
	}
	return out, nil
}

// byID returns the record key and pin of id.
func (ps *Pins) byID(ctx context.Context, id string) (string, configsvc.Pin, error) {
	if err := validID(id); err != nil {
		return "", configsvc.Pin{}, err
	}
	all, err := ps.all(ctx)
	if err != nil {
		return "", configsvc.Pin{}, err
	}
	for key, p := range all {
		if p.ID == id {
			return key, p, nil
		}
	}
	return "", configsvc.Pin{}, fmt.Errorf("access: pin %s: %w", id, configsvc.ErrNotFound)
}

func (ps *Pins) put(ctx context.Context, key string, p configsvc.Pin) error {
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("access: encode pin %s: %w", p.ID, err)
	}
	if err := ps.records.Put(ctx, PinsCollection, key, data); err != nil {
		return fmt.Errorf("access: store pin %s: %w", p.ID, err)
	}
	return nil
}

package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// PinCollection is the record collection pins are stored in, keyed by
// HashToken(token).
const PinCollection = "pins"

// RecordPins is a PinResolver over a configsvc.RecordStore (collection
// "pins", key HashToken(token), value JSON Pin), with a short cache so that
// a busy proxy does not read the store per request while a revocation still
// reaches every proxy within the cache TTL. It is safe for concurrent use.
type RecordPins struct {
	records configsvc.RecordStore
	now     func() time.Time
	ttl     time.Duration
	max     int

	mu    sync.Mutex
	cache map[string]pinEntry
}

type pinEntry struct {
	pin     Pin
	err     error
	fetched time.Time
}

// RecordPinsConfig tunes RecordPins. The zero value is the default.
type RecordPinsConfig struct {
	// Now is the clock (nil: time.Now). Expiry is checked against it on
	// every resolution, cached or not.
	Now func() time.Time
	// TTL is how long a looked-up pin (or its absence) is reused; 0 means
	// 2 s, negative disables the cache.
	TTL time.Duration
	// MaxEntries bounds the cache; 0 means 10000. A full cache is emptied.
	MaxEntries int
}

// NewRecordPins returns a resolver reading pins from records.
func NewRecordPins(records configsvc.RecordStore, cfg RecordPinsConfig) *RecordPins {
	p := &RecordPins{records: records, now: cfg.Now, ttl: cfg.TTL, max: cfg.MaxEntries, cache: map[string]pinEntry{}}
	if p.now == nil {
		p.now = time.Now
	}
	if p.ttl == 0 {
		p.ttl = 2 * time.Second
	}
	if p.max <= 0 {
		p.max = 10000
	}
	return p
}

var _ PinResolver = (*RecordPins)(nil)

// ResolvePin returns the pin stored for token. It wraps ErrPinUnknown when
// no record exists, ErrPinRevoked or ErrPinExpired for a pin no longer
// valid at Now, and otherwise the store's error (e.g. configsvc.ErrUnavailable).
func (p *RecordPins) ResolvePin(ctx context.Context, token string) (Pin, error) {
	key := HashToken(token)
	now := p.now()
	if p.ttl > 0 {
		p.mu.Lock()
		e, ok := p.cache[key]
		p.mu.Unlock()
		if ok && now.Sub(e.fetched) < p.ttl && now.Sub(e.fetched) >= 0 {
			return checked(e.pin, e.err, now)
		}
	}
	pin, err := p.fetch(ctx, key)
	if err != nil && !errors.Is(err, ErrPinUnknown) {
		return Pin{}, err // store trouble is not cached
	}
	if p.ttl > 0 {
		p.mu.Lock()
		if len(p.cache) >= p.max {
			clear(p.cache)
		}
		p.cache[key] = pinEntry{pin: pin, err: err, fetched: now}
		p.mu.Unlock()
	}
	return checked(pin, err, now)
}

func checked(pin Pin, err error, now time.Time) (Pin, error) {
	if err != nil {
		return Pin{}, err
	}
	if err := pin.Check(now); err != nil {
		return Pin{}, fmt.Errorf("pin %s: %w", pin.ID, err)
	}
	return pin, nil
}

func (p *RecordPins) fetch(ctx context.Context, key string) (Pin, error) {
	data, err := p.records.Get(ctx, PinCollection, key)
	if errors.Is(err, configsvc.ErrNotFound) {
		return Pin{}, ErrPinUnknown
	}
	if err != nil {
		return Pin{}, fmt.Errorf("router: look up pin: %w", err)
	}
	var pin Pin
	if err := json.Unmarshal(data, &pin); err != nil {
		return Pin{}, fmt.Errorf("router: pin record %.12s: %v: %w", key, err, configsvc.ErrInvalid)
	}
	return pin, nil
}

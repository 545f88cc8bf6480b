package access

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Defaults for the zero values of SamplerConfig.
const (
	// DefaultRefusalWindow is the sampling window: per client address and
	// actor, the first refusal of a window is written at once and the rest
	// are counted into one summary when the window ends.
	DefaultRefusalWindow = time.Minute
	// DefaultMaxRefusalEntries bounds the sampled entries one server writes
	// per window, all clients together (two a second with the default
	// window).
	DefaultMaxRefusalEntries = 120
	// DefaultMaxRefusalClients bounds the client/actor pairs tracked per
	// window; refusals from further pairs are counted into one overflow
	// entry.
	DefaultMaxRefusalClients = 1000
)

// OverflowClient is the Client (and Actor) of the entry that counts the
// refusals of a window that could not be sampled per client.
const OverflowClient = "(other clients)"

// SamplerConfig tunes a RefusalSampler. The zero value is the default.
type SamplerConfig struct {
	// Window is the sampling window; 0 means DefaultRefusalWindow.
	Window time.Duration
	// MaxEntries bounds the entries written per window, the overflow entry
	// included; 0 means DefaultMaxRefusalEntries. At least 2.
	MaxEntries int
	// MaxClients bounds the client/actor pairs tracked per window; 0 means
	// DefaultMaxRefusalClients.
	MaxClients int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// RefusalSampler writes refused requests to the audit's RefusalsCollection
// sampled: a flood of refusals (anonymous scans, a client retrying with a
// revoked token) costs at most MaxEntries store writes per window, and
// never pushes entries of allowed requests out of the audit log, which it
// does not touch. For each client address and actor, the first refusal of
// a window is written at once (Count 1), so a single refused attempt shows
// in the audit as before; the later ones of the window are counted and
// written as one summary (Count = how many, describing the last) when the
// window ends (Flush). It is safe for concurrent use. Its counts live in
// one process: each server samples its own refusals.
type RefusalSampler struct {
	audit *Audit
	cfg   SamplerConfig

	mu  sync.Mutex
	win *refusalWindow
}

// refusalWindow is what one window has seen.
type refusalWindow struct {
	start    time.Time
	written  int // entries written or promised for this window
	clients  map[string]*refusalCount
	overflow refusalCount
}

// refusalCount is the refusals of one client/actor pair not yet written.
type refusalCount struct {
	last    Entry
	pending int64
}

// NewRefusalSampler returns a RefusalSampler writing to audit, tuned by
// cfg.
func NewRefusalSampler(audit *Audit, cfg SamplerConfig) *RefusalSampler {
	if cfg.Window <= 0 {
		cfg.Window = DefaultRefusalWindow
	}
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultMaxRefusalEntries
	}
	cfg.MaxEntries = max(cfg.MaxEntries, 2)
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = DefaultMaxRefusalClients
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &RefusalSampler{audit: audit, cfg: cfg}
}

// Refused takes one refused request. It writes e at once (Sampled, Count
// 1) when it is the first refusal of its client and actor in the current
// window and the window's budget allows; otherwise it only counts it, for
// the window's summary. When the previous window has ended, its summaries
// are written first. Errors are the store's; a refusal counted is never
// lost to one, but its summary may be (see Flush).
func (rs *RefusalSampler) Refused(ctx context.Context, e Entry) error {
	now := rs.cfg.Now()
	rs.mu.Lock()
	ended := rs.roll(now)
	write := false
	key := e.Client + "\x00" + e.ActorID
	w := rs.win
	switch c := w.clients[key]; {
	case c != nil:
		c.last = e
		c.pending++
	case len(w.clients) < rs.cfg.MaxClients && w.written < rs.cfg.MaxEntries-1:
		w.clients[key] = &refusalCount{}
		w.written++
		write = true
	default:
		w.overflow.last = e
		w.overflow.pending++
	}
	rs.mu.Unlock()
	err := rs.flush(ctx, ended)
	if write {
		e.Count = 1
		if werr := rs.audit.recordRefusal(ctx, e); err == nil {
			err = werr
		}
	}
	return err
}

// Flush writes the summaries of a window that has ended, or, with final
// set (when the server closes), of the current window too. Refusals of a
// window whose summary failed to be written are gone from the audit (the
// server's metrics still count them).
func (rs *RefusalSampler) Flush(ctx context.Context, final bool) error {
	rs.mu.Lock()
	ended := rs.roll(rs.cfg.Now())
	if final && rs.win != nil {
		ended = append(ended, rs.win)
		rs.win = nil
	}
	rs.mu.Unlock()
	return rs.flush(ctx, ended)
}

// roll starts a new window when now is past the current one and returns
// the window that ended, if any. rs.mu must be held.
func (rs *RefusalSampler) roll(now time.Time) []*refusalWindow {
	start := now.Truncate(rs.cfg.Window)
	w := rs.win
	if w != nil && w.start.Equal(start) {
		return nil
	}
	rs.win = &refusalWindow{start: start, clients: map[string]*refusalCount{}}
	if w == nil {
		return nil
	}
	return []*refusalWindow{w}
}

// flush writes the summaries of windows no longer current: one entry per
// client/actor pair with refusals after its first, while the window's
// budget lasts, and one overflow entry for the rest.
func (rs *RefusalSampler) flush(ctx context.Context, windows []*refusalWindow) error {
	var first error
	for _, w := range windows {
		keys := make([]string, 0, len(w.clients))
		for k, c := range w.clients {
			if c.pending > 0 {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			c := w.clients[k]
			if w.written >= rs.cfg.MaxEntries-1 {
				w.overflow.pending += c.pending
				if c.last.Time.After(w.overflow.last.Time) {
					w.overflow.last = c.last
				}
				continue
			}
			w.written++
			e := c.last
			e.Count = c.pending
			if err := rs.audit.recordRefusal(ctx, e); err != nil && first == nil {
				first = err
			}
		}
		if w.overflow.pending > 0 {
			e := w.overflow.last
			e.Count = w.overflow.pending
			e.Client, e.Actor, e.ActorID = OverflowClient, OverflowClient, ""
			e.Reason = fmt.Sprintf("refusals from more clients than one window samples; the last: %s", e.Reason)
			if err := rs.audit.recordRefusal(ctx, e); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// recordRefusal appends a sampled refusal to RefusalsCollection.
func (a *Audit) recordRefusal(ctx context.Context, e Entry) error {
	e.Seq = 0
	e.Time = e.Time.UTC()
	e.Sampled = true
	e.Outcome = OutcomeRefused
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("access: encode sampled refusal: %w", err)
	}
	if _, err := a.records.Append(ctx, RefusalsCollection, data, RefusalKeep); err != nil {
		return fmt.Errorf("access: append sampled refusal: %w", err)
	}
	return nil
}

package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// recordSweepInterval is how often expired tokens and sessions and
// long-expired pins are deleted from the store.
const recordSweepInterval = 10 * time.Minute

// refusalFlushInterval is how often the refusal sampler is asked to write
// the summaries of a window that has ended.
const refusalFlushInterval = 10 * time.Second

// every calls fn every interval until Close; it runs in a goroutine counted
// in s.wg. The server runs three: the instance lease reaper (sweepLeases),
// the sweeper of expired records (sweepExpired) and the writer of sampled
// refusals (flushRefusals).
func (s *Server) every(interval time.Duration, fn func()) {
	defer s.wg.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
			fn()
		}
	}
}

// sweepExpired runs sweepRecords with a deadline and logs its failure.
func (s *Server) sweepExpired() {
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	if err := s.sweepRecords(ctx); err != nil {
		s.cfg.Logger.Warn("sweeping expired tokens, sessions and pins", "err", err)
	}
	s.creds.sweep()
}

// flushRefusals writes the summaries of the refusal sampler's last window
// once it has ended.
func (s *Server) flushRefusals() {
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.RequestTimeout)
	defer cancel()
	if err := s.refusals.Flush(ctx, false); err != nil {
		s.metrics.storeErrors.Inc()
		s.cfg.Logger.Warn("writing sampled refusals", "err", err)
	}
}

// sweepRecords deletes expired tokens (access.Tokens.Sweep) and console
// sessions (access.Sessions.Sweep), the pins expired for longer than
// their retention (access.Pins.Sweep) and the expired answers kept for
// idempotency keys (access.Idempotency.Sweep), and expires and deletes
// change requests (approval.Governance.Sweep), and the states of proxies
// gone for configsvc.ProxyStateExpiry (sweepProxyStates). Several servers
// may sweep at once; a record already gone is not an error.
func (s *Server) sweepRecords(ctx context.Context) error {
	if err := s.sweepProxyStates(ctx); err != nil {
		return err
	}
	if _, err := s.tokens.Sweep(ctx); err != nil {
		return err
	}
	if _, err := s.sessions.Sweep(ctx); err != nil {
		return err
	}
	if _, err := s.pins.Sweep(ctx); err != nil {
		return err
	}
	if _, err := s.idem.Sweep(ctx); err != nil {
		return err
	}
	_, err := s.gov.Sweep(ctx)
	return err
}

// sweepProxyStates deletes the proxy states (configsvc.ProxyStateCollection)
// not updated for configsvc.ProxyStateExpiry: proxies that crashed. Proxies
// on the store sweep them too; proxies publishing through the API
// (`sluice proxy --server`) cannot list the collection, so without this a
// crashed one would stay listed as stale for good. Records that do not
// decode are left alone.
func (s *Server) sweepProxyStates(ctx context.Context) error {
	recs, err := s.cfg.Store.Records().List(ctx, configsvc.ProxyStateCollection)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	for _, rec := range recs {
		var st struct {
			Updated time.Time `json:"updated"`
		}
		if json.Unmarshal(rec.Data, &st) != nil || now.Sub(st.Updated) < configsvc.ProxyStateExpiry {
			continue
		}
		if err := s.cfg.Store.Records().Delete(ctx, configsvc.ProxyStateCollection, rec.ID); err != nil && !errors.Is(err, configsvc.ErrNotFound) {
			return err
		}
	}
	return nil
}

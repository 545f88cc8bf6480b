package httpapi

import (
	"context"
	"time"
)

// recordSweepInterval is how often expired sessions and long-expired pins
// are deleted from the store.
const recordSweepInterval = 10 * time.Minute

// every calls fn every interval until Close; it runs in a goroutine counted
// in s.wg. The server runs two: the instance lease reaper (sweepLeases) and
// the sweeper of expired records (sweepExpired).
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
		s.cfg.Logger.Warn("sweeping expired sessions and pins", "err", err)
	}
}

// sweepRecords deletes expired console sessions (access.Sessions.Sweep) and
// the pins expired for longer than their retention (access.Pins.Sweep).
// Several servers may sweep at once; a record already gone is not an error.
func (s *Server) sweepRecords(ctx context.Context) error {
	if _, err := s.sessions.Sweep(ctx); err != nil {
		return err
	}
	_, err := s.pins.Sweep(ctx)
	return err
}

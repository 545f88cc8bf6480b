package httpapi

import (
	"context"
	"time"
)

// recordSweepInterval is how often expired sessions and long-expired pins
// are deleted from the store.
const recordSweepInterval = 10 * time.Minute

// sweeper deletes expired records every recordSweepInterval until Close.
func (s *Server) sweeper() {
	defer s.wg.Done()
	tick := time.NewTicker(recordSweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
			ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
			if err := s.sweepRecords(ctx); err != nil {
				s.cfg.Logger.Warn("sweeping expired sessions and pins", "err", err)
			}
			cancel()
		}
	}
}

// sweepRecords deletes expired console sessions and the pins that expired
// longer than access.DefaultPinRetention ago. Several servers may sweep at
// once; a record already gone is not an error.
func (s *Server) sweepRecords(ctx context.Context) error {
	if _, err := s.sessions.Sweep(ctx); err != nil {
		return err
	}
	_, err := s.pins.Sweep(ctx)
	return err
}

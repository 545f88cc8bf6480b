package boltstore

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/configsvc"
)

var _ configsvc.Leader = (*Store)(nil)

// Campaign makes this process the leader of election name at once: a
// bbolt file is held by one process, which is therefore always the
// leader. lost is closed when ctx ends or the store closes. See
// configsvc.Leader.
func (s *Store) Campaign(ctx context.Context, name string) (<-chan struct{}, error) {
	if err := configsvc.ValidateFileName(name); err != nil {
		return nil, fmt.Errorf("boltstore: campaign: %w", err)
	}
	if err := s.check(ctx, "campaign "+name); err != nil {
		return nil, err
	}
	lost := make(chan struct{})
	if !s.bg.Go(func() {
		defer close(lost)
		select {
		case <-ctx.Done():
		case <-s.bg.Done():
		}
	}) {
		return nil, fmt.Errorf("boltstore: campaign %s: %w", name, configsvc.ErrClosed)
	}
	return lost, nil
}

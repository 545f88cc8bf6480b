package sdk

import (
	"context"
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/zkstore"
)

// dialZooKeeper opens the ZooKeeper transport: a zkstore.Store the client
// owns, used read-mostly (snapshots, the head watch, the instance's
// ephemeral node).
func dialZooKeeper(ctx context.Context, cfg Config) (*transport, error) {
	st, err := zkstore.Open(ctx, zkstore.Config{
		Servers:        cfg.ZooKeeper,
		Root:           cfg.ZKRoot,
		SessionTimeout: cfg.ZKSessionTimeout,
		OpTimeout:      cfg.OpenTimeout,
		Digest:         cfg.ZKDigest,
		InstanceDigest: cfg.ZKInstanceDigest,
		Logger:         cfg.Logger,
	})
	if err != nil {
		if !errors.Is(err, configsvc.ErrUnavailable) && !errors.Is(err, configsvc.ErrInvalid) {
			err = fmt.Errorf("%w: %w", configsvc.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("sdk: zookeeper %v: %w", cfg.ZooKeeper, err)
	}
	return &transport{store: st, name: "zookeeper", close: st.Close}, nil
}

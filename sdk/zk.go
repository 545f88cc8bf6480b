package sdk

import (
	"context"
	"fmt"

	"github.com/sluicehq/sluice/configsvc"
)

// dialZooKeeper opens the ZooKeeper transport. Placeholder until zkstore lands.
func dialZooKeeper(ctx context.Context, cfg Config) (source, error) {
	return nil, fmt.Errorf("sdk: zookeeper: %w", configsvc.ErrUnavailable)
}

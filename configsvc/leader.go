package configsvc

import "context"

// Leader elects one process among those sharing a store, per election
// name, so that work that must run once per cluster (the rollout driver)
// runs in exactly one place at a time. zkstore and boltstore implement it
// (zkstore: the ephemeral-sequential election recipe under
// {root}/elections/{name}; boltstore: the one process holding the file
// is always the leader).
type Leader interface {
	// Campaign blocks until this process leads election name, then
	// returns lost, a channel closed when the leadership ends: ctx ended
	// (the process resigns), the store closed, or the store can no
	// longer vouch for it (ZooKeeper: the session expired, the election
	// node was deleted, or the connection stayed down long enough that
	// ZooKeeper may expire the session and let another process lead). Once lost is closed the
	// caller must stop the work and may campaign again. It returns ctx's
	// error when ctx ends first, ErrClosed when the store closes, and
	// ErrInvalid for a name that breaks the file-name rule. Safe for
	// concurrent use; campaigns for different names are independent.
	Campaign(ctx context.Context, name string) (lost <-chan struct{}, err error)
}

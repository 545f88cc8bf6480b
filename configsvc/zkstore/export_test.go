package zkstore

// InstanceWatches reports how many watch channels the store's instance
// watches hold in the ZooKeeper client, for tests that bound them.
func InstanceWatches(s *Store) int64 { return s.watches.armed.Load() }

package boltstore

import (
	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
)

// StoredRevisions returns how many revision records of ref s holds,
// compacted or not (for the conformance suite's pruning check).
func StoredRevisions(s *Store, ref configsvc.Ref) (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := refBucket(tx, ref)
		if err != nil {
			return err
		}
		return b.Bucket(keyRevs).ForEach(func(k, _ []byte) error {
			if isRevKey(k) {
				n++
			}
			return nil
		})
	})
	return n, err
}

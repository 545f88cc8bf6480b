// Package bolttest is the test harness of the bbolt store: a real
// boltstore.Store on a file in the test's temp dir, closed when the test
// ends. Every test that needs a store without ZooKeeper opens it here (its
// ZooKeeper twin is configsvc/zkstore/zktest); the helpers that need no
// store live in configsvc/testkit.
package bolttest

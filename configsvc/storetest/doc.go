// Package storetest is the conformance suite every configsvc.Store passes.
//
// A backend's tests call Run (or RunWithOptions) with a function that opens a
// new, empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) configsvc.Store {
//			s, err := boltstore.Open(filepath.Join(t.TempDir(), "sluice.db"), boltstore.Options{})
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite is the executable form of the contract documented on
// configsvc.Store: services and groups, atomic publishes and their limits,
// reads at head and at old revisions, paging, rollback, links, instances,
// ordered watches, revision identities (generation, publish ids,
// BumpGeneration and the watch's rewrite checks), retention, records,
// concurrent publishers and Close; and configsvc.Importer, which every
// store implements too (a history copied from a pruned base, grays as
// they were, refusals, collections). It
// keeps every subtest to a few hundred operations so that it also runs
// quickly against a real ZooKeeper.
package storetest

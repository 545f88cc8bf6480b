// Package boltstore implements configsvc.Store on one bbolt file, Sluice's
// embedded default store (bolt://path/to/sluice.db).
//
// It has the same semantics as the ZooKeeper store, on a single machine:
// publishes are bbolt read-write transactions, so they are atomic and
// serialised; watches and instance watches are served in-process, woken after
// each commit and reading what they deliver from the database, so nothing is
// skipped; instances live in memory, since only the one process holding the
// file lock can see them, and so vanish with it.
//
// Layout of the file, format 2 (all keys are bytes, numbers big-endian
// uint64):
//
//	meta/format                        "2"
//	services/{name}/head               JSON headRecord: revision, manifest, oldest retained revision, pruned-to, active grays
//	services/{name}/revs/{n}           JSON revision without content
//	services/{name}/revs/{n}/{file}    content of file as written by revision n
//	services/{name}/revs/{n}m          JSON manifest (map of FileMeta) at revision n
//	services/{name}/links/{group}      empty: the service uses the group
//	services/{name}/grays/{id}         JSON gray without content (docs/gray.md)
//	services/{name}/grays/{id}/{file}  content the gray writes to file
//	groups/{name}/...                  the same, with users/{service} instead of links
//	records/{collection}/{id}          RecordStore.Put data
//	logs/{collection}/{seq}            RecordStore.Append data
//
// A revision's record, contents and manifest sort together, so a publish
// writes the end of one tree. Format 1 kept manifests and contents in
// buckets of their own (mans/{n}, blobs/{n}{file}); Open upgrades such a
// file to format 2 without rewriting it, and reads and prunes what it holds
// where it is.
//
// A content entry stays as long as a retained revision's manifest refers to
// it, so pruning history never breaks the reconstruction of retained
// revisions.
package boltstore

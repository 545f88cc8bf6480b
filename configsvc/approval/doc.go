// Package approval is four-eyes change governance: approval policies set
// by admins per service or group glob, change requests (a changeset
// waiting for approvals, with its thread of reviews), their expiry and
// sweeping, and the emergency changes admins made past a policy, listed
// until someone reviews them. It is domain logic on a
// configsvc.RecordStore, shared by every server on one store, like the
// tokens and pins of package access.
//
// A change request holds a changeset of up to configsvc.MaxChangesetSize
// (900 KiB), more than one record (configsvc.MaxRecordSize, 64 KiB) holds.
// Its content is kept in chunked records beside its metadata
// (docs/governance.md, "Storage"): collection "change-data-XX" (XX: the
// id's first two hex digits, DataCollection), ids "<id>.<generation>.<n>".
// The metadata record is written first in state "writing" (invisible to
// readers), then the chunks, then the metadata in state "open": a change
// request is seen whole or not at all, on bbolt and ZooKeeper alike, and
// what a crash leaves half written is found from its metadata and deleted
// by Sweep. A rebase writes the new content under the next generation and
// switches the metadata to it before deleting the old chunks.
package approval

package configsvc

import "context"

// Store keeps services and shared groups, their revisions, links and
// instances. zkstore and boltstore implement it; storetest is the conformance
// suite both pass.
//
// Every method is safe for concurrent use. Every method that does I/O takes a
// ctx first and returns within ctx's deadline (or the store's own operation
// timeout, whichever is sooner) with ErrUnavailable when the backend cannot
// be reached: no call hangs. Errors wrap the sentinels in errors.go with
// what was being done, e.g. "zkstore: publish service/orders: conflict".
type Store interface {
	// Create creates an empty service or group at revision 0.
	// ErrConflict if it exists; ErrInvalid for a bad name; ErrTooMany (a
	// *CountError) when the store already holds MaxServices of its kind.
	Create(ctx context.Context, ref Ref) error
	// Delete removes a service or group with its whole history and, for a
	// service, its links and instances. Deleting a group that services still
	// link to fails with ErrConflict. ErrNotFound if it does not exist.
	Delete(ctx context.Context, ref Ref) error
	// List returns the names of all services or all groups, sorted. A ref
	// whose Delete stopped half way is not listed (Head answers ErrNotFound
	// for it; a repeated Delete finishes it).
	List(ctx context.Context, kind Kind) ([]string, error)

	// Head returns the current head manifest. ErrNotFound if ref does not exist.
	Head(ctx context.Context, ref Ref) (Head, error)
	// Publish atomically creates revision cs.Base+1 with cs's changes and moves
	// the head to it. It checks ref and cs's shape and limits
	// (Changeset.Validate) before writing anything (ErrInvalid, ErrTooLarge);
	// content is NOT validated by the store: publish through a
	// ValidatingStore, which validates it once. ErrConflict if the head is
	// no longer cs.Base; ErrInvalid when deleting a file that does not exist;
	// ErrTooLarge (CheckServiceFiles) when it would leave ref with more than
	// MaxFilesPerService files.
	// Its Time is the store's clock in UTC, or the head's time when the clock
	// is behind it (RevisionTime): a service's revision times never decrease,
	// whichever server publishes. The returned Revision has Number, Time, Author,
	// Message and the changes without content. Nothing is half-written: after
	// any error either the whole revision exists or none of it. A publish whose
	// outcome is unknown (connection lost after sending) is resolved by the
	// store before returning: it reports success when its own revision
	// landed, and ErrOutcomeUnknown (never ErrConflict) when it still cannot
	// tell at its deadline.
	Publish(ctx context.Context, ref Ref, cs Changeset) (Revision, error)
	// File returns one file's content and metadata at revision rev (0 = head).
	// ErrNotFound if the file does not exist at that revision; ErrCompacted if
	// rev is older than history retention keeps; ErrNotFound if rev > head.
	File(ctx context.Context, ref Ref, name string, rev int64) ([]byte, FileMeta, error)
	// Snapshot returns the content of every file at revision rev (0 = head).
	// Same errors as File.
	Snapshot(ctx context.Context, ref Ref, rev int64) (Snapshot, error)
	// Revisions lists revisions newest first, without content: at most limit
	// (1..MaxPageSize; 0 means DefaultRevisionsPage) revisions with Number <
	// before (0 = from head).
	Revisions(ctx context.Context, ref Ref, before int64, limit int) ([]Revision, error)
	// Revision returns one revision with the content of its changes.
	// ErrNotFound if it does not exist yet; ErrCompacted if pruned.
	Revision(ctx context.Context, ref Ref, n int64) (Revision, error)

	// Watch delivers, in order and without gaps, every revision of ref after
	// from, then every new one as it is published, until ctx ends; then the
	// channel is closed. Events carry the revision with content. If the link
	// set of a service changes, an Event with LinksChanged is sent. If the
	// active grays of ref change (one created, updated or ended), an Event
	// with GraysChanged is sent, after every revision up to the head that
	// carries the new set (so a promote's revision arrives before the
	// gray leaves the set). Transient
	// trouble (connection loss, session expiry) is reported as an Event with
	// Err wrapping ErrUnavailable and the watch carries on, resuming after the
	// last delivered revision. If revisions after from were pruned by
	// retention, one event with Err wrapping ErrCompacted is sent and the
	// channel closed: the caller reloads a Snapshot and watches again from its
	// revision. If ref is deleted (or never existed), an event
	// with Err wrapping ErrNotFound is sent and the channel closed. A slow
	// receiver delays the watch; it never loses events. A from above the
	// head is waited for, like etcd's watch from a future revision: nothing
	// is sent until a revision after from exists (a client that applied
	// from elsewhere, e.g. through another server, resumes without going
	// back).
	Watch(ctx context.Context, ref Ref, from int64) <-chan Event

	// CreateGray creates a gray of ref from g (its Name, Message, Author,
	// BaseRevision, Changes and Selector) and adds its summary to the
	// head, in one atomic step; main's revision does not change. It checks
	// everything NewGray checks: ErrConflict when the head is no longer
	// g.BaseRevision, or, as a *GrayConflictError, when another active gray
	// holds one of its files; ErrInvalid or ErrTooLarge for bad input
	// (the changes are limited like a changeset); ErrTooMany beyond
	// MaxActiveGrays; ErrNotFound if ref does not exist. Content is not
	// validated by the store: create through a ValidatingStore. It returns
	// the gray as stored: a new ID, Version 1, state active.
	CreateGray(ctx context.Context, ref Ref, g Gray) (Gray, error)
	// UpdateGray changes the active gray id of ref if it is still at
	// version (compare-and-set; ErrConflict otherwise, or when it ended):
	// fn gets a copy to change (name, message, selector, rollout; see
	// UpdatedGray) and may be called again when the head moved meanwhile.
	// The gray and its head summary are written in one atomic step, so
	// watchers see the change as a GraysChanged event. It returns the gray
	// as stored (Version bumped). ErrNotFound if the gray does not exist.
	UpdateGray(ctx context.Context, ref Ref, id string, version int64, fn func(*Gray) error) (Gray, error)
	// EndGray ends the active gray id of ref at version (ErrConflict
	// otherwise) as end says (EndedGray): abandoned, its summary leaves the
	// head; or promoted, and in the same atomic step main gets the next
	// revision, main + PromoteChanges of the gray on end.Promote.Base, which
	// must be the head (ErrConflict otherwise), as Publish would write it.
	// Nothing is half-written. It returns the ended gray and, for a
	// promote, the revision (without content). Ended grays stay listed,
	// the newest MaxEndedGrays per ref. Content is not validated by the
	// store: promote through a ValidatingStore.
	EndGray(ctx context.Context, ref Ref, id string, version int64, end GrayEnd) (Gray, *Revision, error)
	// Gray returns one gray of ref with the content of its changes and,
	// while it is active, MainChanged. ErrNotFound if it does not exist
	// (or was dropped from the history of ended grays).
	Gray(ctx context.Context, ref Ref, id string) (Gray, error)
	// Grays lists the grays of ref, active and ended, without content,
	// in SortGrays order (active first, oldest first; then ended, newest
	// first), active ones with MainChanged.
	Grays(ctx context.Context, ref Ref) ([]Gray, error)

	// Link makes service svc use shared group group, recording both directions.
	// Linking twice is not an error. ErrNotFound if either does not exist;
	// ErrTooMany when svc already links MaxLinksPerService groups;
	// ErrOutcomeUnknown as for Publish.
	Link(ctx context.Context, svc, group string) error
	// Unlink removes the link; ErrNotFound if it did not exist;
	// ErrOutcomeUnknown as for Publish.
	Unlink(ctx context.Context, svc, group string) error
	// Users returns the services linked to group, sorted.
	Users(ctx context.Context, group string) ([]string, error)

	// Register records inst as a live instance of inst.Service until the
	// returned Lease is closed or the process dies (ZooKeeper: ephemeral node,
	// created again after a session expiry, retried until it lands; bbolt:
	// removed on Close and at the next open). Started and Updated are kept in
	// UTC. ErrConflict if an instance with that id is already live;
	// ErrNotFound if the service does not exist; ErrTooMany (a *CountError)
	// when the service has its limit of live instances
	// (Limits.InstancesPerService, at most MaxInstancesPerService). A Register
	// that fails leaves no registration behind.
	Register(ctx context.Context, inst Instance) (Lease, error)
	// Instances lists the live instances of a service, sorted by id.
	Instances(ctx context.Context, svc string) ([]Instance, error)
	// RemoveInstance removes the record of instance id of service svc,
	// whoever registered it: what an administrator does to an instance that
	// is gone but still listed (the ZooKeeper session of a dead process that
	// has not expired yet, a registration another server holds). The lease
	// that registered it is not closed: its next Update writes the record
	// again, so an instance that is alive after all comes back when it next
	// reports. ErrNotFound if the service or the instance does not exist;
	// ErrInvalid for a bad name or id.
	RemoveInstance(ctx context.Context, svc, id string) error
	// WatchInstances sends the full live instance list of svc now and after
	// every change, until ctx ends; then the channel is closed. Only the newest
	// list matters: a slow receiver may miss intermediate lists.
	WatchInstances(ctx context.Context, svc string) <-chan InstancesEvent

	// Records returns the store's record collections (tokens, pins, audit).
	Records() RecordStore

	// Ping checks that the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases the store. Watches end, leases are released, and no
	// goroutine started by the store remains once Close returns.
	Close() error
}

// Event is one step of a Watch.
type Event struct {
	// Revision is set for a new revision; its Changes carry content.
	Revision *Revision
	// LinksChanged is set when a service's linked groups changed; Links holds the new set.
	LinksChanged bool
	Links        []string
	// GraysChanged is set when the active grays of the service or group
	// changed (Head.Grays); Grays holds the new summaries, sorted by id.
	GraysChanged bool
	Grays        []GraySummary
	// Err reports trouble; see Store.Watch for which errors end the watch.
	Err error
}

// InstancesEvent is one step of WatchInstances.
type InstancesEvent struct {
	Instances []Instance
	Err       error
}

// Lease is a live instance registration.
type Lease interface {
	// Update replaces the registered instance's data (same service and id),
	// e.g. its applied revision and status. ErrClosed after Close;
	// ErrNotFound once the service was deleted, even if one of that name was
	// created since: the registration ended with its service (register
	// again).
	Update(ctx context.Context, inst Instance) error
	// Close removes the registration. It is safe to call more than once.
	Close() error
}

// Record is one entry of a record collection.
type Record struct {
	ID   string
	Data []byte
}

// RecordStore keeps small records for the admin server, shared by every
// server on the same store: API tokens (collection "tokens", keyed by token
// hash), debug pins ("pins") and the audit log ("audit", append-only).
// Collection names and ids follow the file-name rule (ValidateFileName).
// Record collections (Put/Get/Delete/List) and append-only logs
// (Append/Scan) are apart: a collection and a log of the same name never
// see each other's entries.
// A record is at most MaxRecordSize (64 KiB); a Put collection holds at
// most MaxRecordsPerCollection records.
type RecordStore interface {
	// Put creates or replaces a record. Creating one in a collection that
	// holds MaxRecordsPerCollection records is ErrTooMany.
	Put(ctx context.Context, collection, id string, data []byte) error
	// Create creates a record only if there is none with that id: it is
	// how one of several servers claims an id (an idempotency key).
	// ErrConflict if the record exists; ErrTooMany as for Put.
	Create(ctx context.Context, collection, id string, data []byte) error
	// Get returns a record's data; ErrNotFound if absent.
	Get(ctx context.Context, collection, id string) ([]byte, error)
	// Delete removes a record; ErrNotFound if absent.
	Delete(ctx context.Context, collection, id string) error
	// List returns every record of a collection, sorted by id.
	List(ctx context.Context, collection string) ([]Record, error)
	// Append adds data to an append-only collection under the next sequence
	// number (1, 2, 3 …, increasing, shared by all writers) and returns it.
	// Only the newest keep entries are retained (0 means DefaultAppendKeep): after an
	// Append with a lower keep, Scan returns no older entry, however many
	// there were. An Append whose outcome was unknown (a lost reply) is
	// resolved by the store without appending twice.
	Append(ctx context.Context, collection string, data []byte, keep int) (int64, error)
	// Scan returns up to limit entries (1..MaxPageSize; 0 means
	// DefaultScanPage) with sequence < before (0 = newest), newest first; ID
	// is the decimal sequence number.
	Scan(ctx context.Context, collection string, before int64, limit int) ([]Record, error)
}

// Package fanout shares store watches between the consumers of one server
// process: a configsvc.Store decorator whose Watch and WatchInstances are
// served from one upstream watch per service or group (and one instance
// watch per service), however many event streams, proxies and in-process
// SDKs follow it.
//
// Each watched ref has a hub: one upstream Store.Watch started from the
// head, and a bounded ring of the events it delivered (revisions with
// content, links and grays changes). A subscriber catches up by revision
// number from the ring, or with Store.Revision reads for revisions older
// than the ring, then gets the grays baseline and follows the ring from
// there. A subscriber that falls a whole ring behind the newest event is
// told to reload with an event wrapping configsvc.ErrCompacted, as a
// watcher whose revisions retention pruned is; it never holds up the
// others. The upstream watch is stopped when the last subscriber of its
// ref has been gone for Options.Linger.
//
// Watch hands events out through a goroutine per call, as stores do;
// Subscribe returns a Subscription that the caller polls on its own
// goroutine (the admin server's event streams do), so that an idle
// stream costs no goroutine here at all.
//
// A publish therefore costs one upstream watch read per server, not one
// per stream. The events a subscriber gets keep configsvc.Store.Watch's
// contract (order, no gaps, resume after a revision, grays baseline,
// Expect and ErrRewritten, ErrCompacted, ErrNotFound); the storetest
// conformance suite runs against the decorator.
package fanout

// Package zkstore implements configsvc.Store on Apache ZooKeeper with the
// go-zookeeper/zk client: services and shared groups with numbered
// revisions, atomic multi-file publish (one ZooKeeper multi transaction),
// history retention, links, ephemeral instance registrations, ordered
// watches that survive connection loss and session expiry, and the record
// collections (tokens, pins, audit) of the admin server.
//
// The node layout, node contents, ACLs and size limits are documented in
// docs/zookeeper-layout.md.
//
// Every call is bounded by Config.OpTimeout and by its context: while
// ZooKeeper cannot be reached a call returns an error wrapping
// configsvc.ErrUnavailable instead of waiting for the client to reconnect.
// A publish whose reply was lost is resolved by re-reading: every revision
// node carries a random publish id, so a retried publish recognises its own
// revision instead of reporting a false conflict.
//
// Tests start a real ZooKeeper through the zktest subpackage.
package zkstore

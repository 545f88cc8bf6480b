// Package access decides who may do what on the Sluice admin server and owns
// its secrets: API tokens and debug pins (random, shown once, stored only as
// SHA-256 hashes), console sessions, roles granted on service and
// shared-group names or globs, the Authorizer that turns (principal, action,
// target) into allow or deny with a reason, and the audit log of every
// mutating request (refused ones sampled apart, RefusalSampler), and the
// answers kept for idempotency keys (Idempotency: a retry with the same key
// is answered, not applied again). Pins is used by both the admin API
// (create, list, revoke, sweep) and the proxy (ResolvePin, cached briefly).
//
// Everything is kept in a configsvc.RecordStore, so every server and proxy on
// one store sees the same tokens, sessions, pins, idempotency keys and audit
// entries; nothing that matters lives only in one process's memory (the
// proxy's pin cache lasts seconds). The package imports only the standard
// library and configsvc.
package access

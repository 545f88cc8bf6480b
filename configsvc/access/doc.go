// Package access decides who may do what on the Sluice admin server: API
// tokens (random, shown once, stored only as SHA-256 hashes), console
// sessions, roles granted on service and shared-group names or globs, the
// Authorizer that turns (principal, action, target) into allow or deny with a
// reason, and the audit log of every mutating request.
//
// Everything is kept in a configsvc.RecordStore, so every server on one store
// sees the same tokens, sessions and audit entries; nothing that matters lives
// only in one server's memory. The package imports only the standard library
// and configsvc.
package access

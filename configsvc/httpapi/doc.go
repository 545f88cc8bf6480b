// Package httpapi is Sluice's admin server: the JSON API under /v1 (services,
// shared groups, files, revisions, diffs, rollbacks, links, instances, pins,
// tokens, audit, console sessions), server-sent-event watches, the OpenAPI 3
// document at /v1/openapi.json, /healthz, /readyz, /metrics and the web
// console at /, served by gin.
//
// New takes every dependency explicitly through Config (store, logger,
// metrics registry, clock) and returns a Server, an http.Handler. Who may do
// what is decided by configsvc/access; every allowed mutating request is
// written to the audit log in the store, and refused ones are sampled into
// a collection of their own (access.RefusalSampler), so several servers on
// one store behave as one and no flood of refusals erases the log. Limits
// per token and per service (event streams, sessions, instances, the size
// of a service) are Config fields, answered 429 or 413 naming them; event
// streams re-check their credential and end when it is revoked.
//
// Exactly one function, classify in errors.go, maps configsvc's sentinel
// errors to HTTP status codes and the error codes of the JSON error shape
// {"error":{"code","message","details"}} documented in docs/architecture.md.
package httpapi

// Package api is the admin API of Sluice on both sides of the wire: the
// request and response types the server encodes and clients decode, the
// error body as a Go error, the server-sent event names and the one SSE
// decoder, and a Client that calls every endpoint.
//
// The admin server (configsvc/httpapi) encodes its JSON answers and event
// streams with these types; the CLI, the SDK's HTTP transport, the tools
// and the tests decode them with the same types through Client. The OpenAPI
// document served at /v1/openapi.json is checked against both the handlers
// and these types, so the three cannot drift apart.
//
// Wire types are named after their schema in the OpenAPI document (Head,
// Revision, Diff, Pin …). Where a domain type already has the wire shape
// it is an alias (Instance is configsvc.Instance). Client methods speak the
// domain types of configsvc where there are some (Head, Revision, Snapshot,
// Instance, Event), so that a Client offers the Store-like methods the SDK
// reads (Head, Snapshot, Watch, Register); elsewhere they return the wire
// types. ProxySource adds to those what a proxy reads and writes (a copy
// of the pins, its published state), so that `sluice proxy --server` runs
// on the admin API as it runs on a store.
//
// Errors: an answer that is not 2xx is an *Error, which matches the
// configsvc sentinels with errors.Is (404 ErrNotFound, 409 ErrConflict,
// 400/422 ErrInvalid, 413 ErrTooLarge, 410 ErrCompacted, 5xx ErrUnavailable)
// and this package's ErrPrecondition, ErrUnauthorized and ErrForbidden; a
// server that cannot be reached is a *ConnError, which matches
// configsvc.ErrUnavailable.
//
// The package does not import gin or any other HTTP framework.
package api

// Package cli implements the sluice command-line client: the verbs
// (services, get, put, edit, publish, history, diff, rollback, watch, link,
// unlink, shared, instances, token, whoami, audit, pin, routes) that drive the admin
// server's REST API under /v1.
//
// Every verb takes the same connection flags: --server (SLUICE_SERVER,
// default http://127.0.0.1:7070), --token (SLUICE_TOKEN, falling back to the
// bootstrap file <data-dir>/admin.token), --data-dir (SLUICE_DATA_DIR,
// default ./sluice-data), --timeout and -o table|json. Output is a human
// table by default and the server's JSON with -o json. A failed call exits
// non-zero with the server's error code, message and details (such as the
// file, line and column of a parse error). The token is sent only in the
// Authorization header and is never printed.
//
// The package holds no global state: Commands builds a fresh command tree
// bound to the Env it is given, so tests run it with their own streams and
// environment.
package cli

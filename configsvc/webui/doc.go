// Package webui is Sluice's web console: a single-page application in plain
// HTML, CSS and JavaScript modules, embedded in the binary so that
// `sluice server` serves it at / with no Node toolchain and no network access.
//
// The console talks only to the documented admin API under /v1 of the same
// origin. It signs in by exchanging an API token for the server's HttpOnly,
// SameSite=Strict session cookie (POST /v1/session) and keeps no token in
// browser storage; every state-changing request carries the X-Sluice-CSRF
// header copied from the CSRF cookie. Pages: services (search, revision, last
// change, instance revisions), a service's files with a line-numbered editor,
// client-side JSON validation and server 422 details shown at the line, diff
// against live before a multi-file publish, history with diff of any two
// revisions and rollback, live instances (server-sent events), shared groups
// and the services they reach, routes (sluice-system/routes.yaml), debug pins
// and the audit log. Users without an edit grant see no edit controls.
//
// The browser tests in this package drive Debian's Chromium (chromedp)
// against a real httpapi server backed by boltstore.
package webui

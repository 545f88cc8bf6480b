// Package webui is Sluice's web console: a single-page application in plain
// HTML, CSS and JavaScript modules, embedded in the binary so that
// `sluice server` serves it at / with no Node toolchain and no network access.
//
// The console talks only to the documented admin API under /v1 of the same
// origin. It signs in by exchanging an API token for the server's HttpOnly,
// SameSite=Strict session cookie (POST /v1/session) and keeps no token in
// browser storage; every state-changing request carries the X-Sluice-CSRF
// header copied from the CSRF cookie. One router (static/js/router.js) owns
// the page shown and cancels the requests of a page left. Pages: services
// and shared groups (one summary request per page, filtered, sorted and
// paged by the server), a service's files in a code editor (CodeMirror 6:
// highlighting, browser-side JSON, YAML and TOML checks, the server's
// format, route-schema and JSON Schema violations at their lines, search and
// replace), review before a multi-file publish with the server's dry run
// (validation, blast radius, approval), history with any two revisions
// compared (unified or side by side), any file at any revision, rollback,
// live instances, the effective config, change requests (inbox, approve,
// apply, rebase, emergencies, approval policies), routes
// (sluice-system/routes.yaml), debug pins, search in configs, the audit log
// and tokens; grays (issue 13): publish as gray from the review with a
// preview of the live instances the selector matches (the sticky hash and
// selector rule of configsvc ported to static/js/graysel.js), a gray's page
// (cohort statuses, widen or narrow, promote, abandon, its rollout started
// and watched), and the grays of a service or group. Users without an edit
// grant see no edit controls.
// docs/console.md describes it for users.
//
// Third-party browser code is vendored: static/vendor/codemirror.js and
// parsers.js (served) and testdata/axe (tests only), rebuilt byte for byte
// from vendor/package-lock.json by vendor/build.sh.
//
// The browser tests in this package drive Debian's Chromium (chromedp)
// against a real httpapi server backed by boltstore, and run axe-core on
// every page.
package webui

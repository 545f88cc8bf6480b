// Command sizing measures what one `sluice server` holds: it opens N
// event streams (GET /v1/services/{svc}/watch, what SDKs on the HTTP
// transport keep open), reads the server's memory and goroutines from its
// /metrics, publishes one revision and reports how long the server took to
// deliver it to every stream.
//
//	SLUICE_TOKEN=… go run ./deploy/sizing --server http://127.0.0.1:7070 --service orders --watchers 1000
//
// It is a scripted load run for docs/operations.md, not a test. Every
// stream is closed before it exits; it runs at most --timeout.
package main

// Command sizing measures what one `sluice server` holds and how fast it
// fans a publish out: it opens event streams (GET
// /v1/services/{svc}/watch, what SDKs on the HTTP transport keep open)
// spread over services, reads the server's memory from its /metrics
// (process_resident_memory_bytes) before and after, publishes revisions
// of one service and times, from the start of each publish request, the
// delivery to every stream of that service. With --peer it measures, in
// the same run and on the same number of connections, a minimal Go SSE
// broadcaster (this program started again as a child process) writing one
// event to all of them: the ceiling the server is compared with. With --zk
// it reads ZooKeeper's `mntr` packets_received before and after the
// publishes (the four-letter word must be whitelisted in zoo.cfg).
//
//	SLUICE_TOKEN=… go run ./deploy/sizing --server http://127.0.0.1:7070 --service orders --watchers 1000
//	SLUICE_TOKEN=… go run ./deploy/sizing --watchers 5000 --services 100 --per-service 150 --peer --zk 127.0.0.1:2181
//
// deploy/sizing/fanout.sh runs the whole measurement (ZooKeeper, a server,
// several runs, medians). It is a scripted load run for docs/benchmarks.md
// and docs/operations.md, not a test: loopback only, every stream closed
// before it exits, every wait bounded, the whole run at most --timeout. It
// raises its own RLIMIT_NOFILE to what it needs.
package main

// Package clustertest holds Sluice's multi-process cluster tests: they build
// the real sluice and examples/orders binaries, start a ZooKeeper ensemble
// (configsvc/zkstore/zktest), several `sluice server` and `sluice proxy`
// processes and SDK clients on 127.0.0.1, and check that they act as one:
// a publish through one server reaches watchers of another, pins work
// across proxies, killing a server or the ZooKeeper leader loses no
// acknowledged publish, an SDK partitioned from ZooKeeper past its
// session recovers, and the history of six clients reading and writing
// through two servers while ZooKeeper leaders and a server are killed is
// linearizable (checked with porcupine; a failed check keeps the history
// and its visualization in test-output/robustness/), and a ZooKeeper
// restored from an older backup under running servers, proxies and SDKs
// is taken as a new history by all of them, with or without a generation
// bump.
//
// The package has no non-test code. Run it with `make test-cluster`
// (SLUICE_CLUSTER_CHURN=60s, as issue 7 asks) or directly:
//
//	SLUICE_CLUSTER_CHURN=15s go test -race -count=1 -v ./deploy/clustertest/
//
// SLUICE_ROBUSTNESS_DURATION (a Go duration, default 40s) lengthens the
// robustness run.
//
// Every process is started with a parent-death signal and stopped in
// t.Cleanup, so a failed or interrupted run leaves nothing behind.
// Tokens never reach the test log: process output is redacted before it is
// shown.
package clustertest

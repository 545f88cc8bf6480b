// Command sluice-bench runs Sluice's scripted load measurements.
//
// sluice-bench watch measures config propagation: N SDK clients watch one
// service, the harness publishes a file M times, and for every (publish,
// client) pair it records the time from the publish call's return to the
// client's OnChange callback. It prints p50/p99/max per transport.
//
//	sluice-bench watch --transport zookeeper --zk 127.0.0.1:2181 --clients 1000 --publishes 200
//	sluice-bench watch --transport http --zk 127.0.0.1:2181 --clients 100 --publishes 200
//	sluice-bench watch --transport http --clients 100      # admin server over a temporary bbolt store
//
// Over http the harness serves the real admin server (configsvc/httpapi)
// in-process on a loopback port, over ZooKeeper when --zk is given and over
// a temporary bbolt file otherwise; publishes go straight to that store.
// sluice-bench gray measures how long a gray takes to reach its cohort
// next to a plain publish: N SDK clients over HTTP register instances of
// one service on the admin server (temporary bbolt store), and each round,
// alternating the order, times POST …/revisions and POST …/grays (a
// selector naming every instance) from the call's start to the last
// client's OnChange callback with the new content, then abandons the gray
// and waits for every client to be back on main. It prints the medians
// and their ratio.
//
//	sluice-bench gray --clients 20 --rounds 9
//
// Every run is bounded by --timeout, and each publish waits at most
// --publish-timeout for all clients before the next one.
package main

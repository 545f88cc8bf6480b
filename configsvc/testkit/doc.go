// Package testkit holds the test helpers Sluice's tests share, written once
// instead of copied into every package: Eventually and EventuallyTrue (poll
// until a condition holds, or fail the test), Clock (a fake clock for the
// `now func() time.Time` that time-dependent code takes), FreeAddr (a
// loopback address to listen on later) and WriteCert (a self-signed
// certificate for 127.0.0.1 in PEM files, for TLS listeners).
//
// It imports only the standard library, so that the in-package tests of
// every Sluice package, configsvc's and router's roots included, can use it
// without an import cycle. The harnesses that wrap a technology live beside
// its adapter instead: configsvc/zkstore/zktest (real ZooKeeper servers)
// and configsvc/boltstore/bolttest (a bbolt store in a temp dir).
package testkit

// Package zktest starts real Apache ZooKeeper servers for tests: a standalone
// server (Start) or a quorum ensemble on loopback (StartEnsemble), each on
// free 127.0.0.1 ports with its data in t.TempDir(), killed and removed when
// the test ends.
//
// ZooKeeper is found through ZOOKEEPER_HOME (a release tarball: lib/*.jar,
// conf/) or, failing that, Debian's zookeeper package (/usr/share/java/
// zookeeper.jar and the jars its manifest names). The JVM runs directly
// (java -cp … QuorumPeerMain zoo.cfg) with a 256 MiB heap, a 200 ms tick
// (sessions from 400 ms to 60 s), four-letter-word commands enabled, the
// admin HTTP server disabled and forceSync off: killing the process loses
// nothing because the page cache survives it, so the fault tests stay fast;
// they do not simulate power loss.
//
// When ZooKeeper or java cannot be found, the test is skipped with an install
// hint, unless CI=true or SLUICE_REQUIRE_ZOOKEEPER=1, in which case it fails.
// SLUICE_SKIP_ZOOKEEPER=1 skips every ZooKeeper test (ignored when CI=true).
//
// Every server is a separate JVM; starting one takes about a second on an idle
// machine. Tests that share one server should isolate themselves under a
// unique chroot.
package zktest

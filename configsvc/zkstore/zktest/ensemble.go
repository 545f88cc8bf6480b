package zktest

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Ensemble is a ZooKeeper quorum of separate server processes on 127.0.0.1,
// each with its own client, quorum and election ports and data directory.
// Nodes are indexed from 0; node i has myid i+1.
//
// Like Server's, its methods that can fail the test must run on the test's
// goroutine.
type Ensemble struct {
	t     testing.TB
	nodes []*Server
}

// StartEnsemble starts an n-node ensemble (n ≥ 1; 3 is the usual choice),
// waits until every node has joined the quorum, and registers a cleanup that
// kills them all. It skips or fails the test when ZooKeeper is not installed
// (see the package doc).
func StartEnsemble(t testing.TB, n int) *Ensemble {
	t.Helper()
	if n < 1 {
		t.Fatalf("zktest: StartEnsemble(%d): need at least one node", n)
	}
	l := find(t)
	base := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		e, err := startEnsemble(t, l, filepath.Join(base, fmt.Sprintf("ensemble-%d", attempt)), n)
		if err == nil {
			return e
		}
		lastErr = err
		if !errors.Is(err, errExited) {
			break
		}
	}
	t.Fatalf("zktest: %d-node ZooKeeper ensemble did not start: %v", n, lastErr)
	return nil
}

func startEnsemble(t testing.TB, l launcher, base string, n int) (*Ensemble, error) {
	ports, err := freePorts(3 * n)
	if err != nil {
		t.Fatalf("zktest: %v", err)
	}
	e := &Ensemble{t: t}
	peers := make([]string, n)
	for i := range n {
		peers[i] = fmt.Sprintf("server.%d=127.0.0.1:%d:%d", i+1, ports[3*i+1], ports[3*i+2])
	}
	modes := []string{"leader", "follower"}
	if n == 1 {
		modes = append(modes, "standalone")
	}
	for i := range n {
		s := &Server{
			t: t, launch: l, dir: filepath.Join(base, fmt.Sprintf("node%d", i+1)),
			port: ports[3*i], id: i + 1, modes: modes,
		}
		if err := s.writeConfig(peers); err != nil {
			t.Fatalf("zktest: %v", err)
		}
		t.Cleanup(s.cleanup)
		e.nodes = append(e.nodes, s)
	}
	for _, s := range e.nodes {
		if err := s.start(); err != nil {
			t.Fatalf("zktest: %v", err)
		}
	}
	for _, s := range e.nodes {
		if err := s.waitServing(startTimeout); err != nil {
			for _, s := range e.nodes {
				s.kill()
			}
			return nil, err
		}
	}
	return e, nil
}

// Size returns the number of nodes.
func (e *Ensemble) Size() int { return len(e.nodes) }

// Node returns node i (0-based) for finer control (Pause, Stop, Mode …).
func (e *Ensemble) Node(i int) *Server { return e.nodes[i] }

// Servers returns every node's client address, "127.0.0.1:PORT", in node order.
func (e *Ensemble) Servers() []string {
	out := make([]string, len(e.nodes))
	for i, s := range e.nodes {
		out[i] = s.Addr()
	}
	return out
}

// ConnectString returns Servers joined by commas.
func (e *Ensemble) ConnectString() string { return strings.Join(e.Servers(), ",") }

// Leader returns the index of the node that reports Mode: leader, waiting up
// to 30 s for an election to finish; it fails the test if none does.
func (e *Ensemble) Leader() int {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i, s := range e.nodes {
			if s.Running() && s.Mode() == "leader" {
				return i
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.t.Fatalf("zktest: no ensemble node became leader within 30s")
	return -1
}

// Kill kills node i with SIGKILL (see Server.Kill).
func (e *Ensemble) Kill(i int) { e.nodes[i].Kill() }

// Stop stops node i gracefully (see Server.Stop).
func (e *Ensemble) Stop(i int) { e.nodes[i].Stop() }

// Restart restarts node i on its ports and data and waits until it has
// rejoined the quorum (see Server.Restart).
func (e *Ensemble) Restart(i int) { e.t.Helper(); e.nodes[i].Restart() }

// StartAll starts every node that is not running, all at once (when every
// node was stopped, none serves before a quorum is back), and waits until
// each serves. A test restores a backup this way: Stop every node, replace
// the version-2 folder of each node's data directory (Node(i).Dir()/data),
// StartAll. It fails the test if a node does not serve within 60 s.
func (e *Ensemble) StartAll() {
	e.t.Helper()
	for _, s := range e.nodes {
		if s.Running() {
			continue
		}
		if err := s.start(); err != nil {
			e.t.Fatalf("zktest: start %s: %v", s.name(), err)
		}
	}
	for _, s := range e.nodes {
		if err := s.waitServing(startTimeout); err != nil {
			e.t.Fatalf("zktest: %v", err)
		}
	}
}

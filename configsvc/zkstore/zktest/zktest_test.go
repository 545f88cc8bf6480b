package zktest_test

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
	"github.com/sluicehq/sluice/configsvc/zkstore/zkversion"
)

func connect(t *testing.T, servers []string) *zk.Conn {
	t.Helper()
	c, _, err := zk.Connect(servers, 2*time.Second, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	if err != nil {
		t.Fatalf("connect %v: %v", servers, err)
	}
	t.Cleanup(c.Close)
	return c
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}

// waitGet reads path until it succeeds or 20 s pass.
func waitGet(t *testing.T, c *zk.Conn, path string) []byte {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _, err := c.Get(path)
		if err == nil {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("get %s: %v", path, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStandaloneKillRestartKeepsData(t *testing.T) {
	s := zktest.Start(t)
	if got := s.Mode(); got != "standalone" {
		t.Fatalf("Mode() = %q, want standalone", got)
	}
	c := connect(t, s.Servers())
	if _, err := c.Create("/k", []byte("v1"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create: %v", err)
	}
	s.Kill()
	if s.Running() {
		t.Fatal("Running() = true after Kill")
	}
	if _, err := zktest.FourLetterWord(s.Addr(), "srvr", 200*time.Millisecond); err == nil {
		t.Fatal("killed server still answers srvr")
	}
	s.Restart()
	if got := string(waitGet(t, c, "/k")); got != "v1" {
		t.Fatalf("after restart /k = %q, want v1", got)
	}
	s.Stop()
	s.Restart()
	if got := string(waitGet(t, c, "/k")); got != "v1" {
		t.Fatalf("after stop+restart /k = %q, want v1", got)
	}
}

// TestPauseStopsServingUntilResume: a paused server answers nothing (its
// clients lose the connection), and after Resume it serves again. Whether a
// session outlives the pause is ZooKeeper's race between the client's
// reconnect and the server's expiry sweep, so the test does not assert it.
func TestPauseStopsServingUntilResume(t *testing.T) {
	s := zktest.Start(t)
	c, events, err := zk.Connect(s.Servers(), zktest.MinSessionTimeout, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitState(t, events, zk.StateHasSession)
	s.Pause()
	waitState(t, events, zk.StateDisconnected)
	s.Resume()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := c.Create(fmt.Sprintf("/after-resume-%d", time.Now().UnixNano()), nil, 0, zk.WorldACL(zk.PermAll))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server does not serve 20 s after Resume: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitState(t *testing.T, events <-chan zk.Event, want zk.State) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.State == want {
				return
			}
		case <-timeout:
			t.Fatalf("no %v within 20s", want)
		}
	}
}

func TestEnsembleSurvivesLeaderKill(t *testing.T) {
	e := zktest.StartEnsemble(t, 3)
	if len(e.Servers()) != 3 {
		t.Fatalf("Servers() = %v, want 3 addresses", e.Servers())
	}
	c := connect(t, e.Servers())
	if _, err := c.Create("/k", []byte("v1"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create: %v", err)
	}
	leader := e.Leader()
	e.Kill(leader)
	next := e.Leader()
	if next == leader {
		t.Fatalf("leader is still node %d after it was killed", leader)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := c.Set("/k", []byte("v2"), -1)
		if err == nil {
			break
		}
		if time.Now().After(deadline) || !(errors.Is(err, zk.ErrConnectionClosed) || errors.Is(err, zk.ErrNoServer) || errors.Is(err, zk.ErrSessionMoved)) {
			t.Fatalf("set after leader kill: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.Restart(leader)
	if m := e.Node(leader).Mode(); m != "follower" && m != "leader" {
		t.Fatalf("restarted node mode = %q", m)
	}
	only := connect(t, []string{e.Node(leader).Addr()})
	if got := string(waitGet(t, only, "/k")); got != "v2" {
		t.Fatalf("restarted node reads /k = %q, want v2", got)
	}
}

// TestServesASafeVersion: what the harness starts answers srvr with the
// version it was found as, and, unless ZOOKEEPER_HOME chose another on
// purpose, that version has none of the known data-loss bugs (issue 20).
func TestServesASafeVersion(t *testing.T) {
	s := zktest.Start(t)
	out, err := zktest.FourLetterWord(s.Addr(), "srvr", 2*time.Second)
	if err != nil {
		t.Fatalf("srvr: %v", err)
	}
	v, err := zkversion.Parse(out)
	if err != nil {
		t.Fatalf("srvr answer: %v", err)
	}
	t.Logf("ZooKeeper %s", v)
	if reason, bad := zkversion.KnownDataLoss(v); bad && os.Getenv("ZOOKEEPER_HOME") == "" {
		t.Fatalf("the harness runs %s", reason)
	}
}

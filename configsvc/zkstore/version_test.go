package zkstore

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// fakeSrvr answers every connection with answer, like a ZooKeeper member
// answering the srvr four-letter word.
func fakeSrvr(t *testing.T, answer string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4)
			_, _ = io.ReadFull(c, buf)
			_, _ = io.WriteString(c, answer)
			c.Close()
		}
	}()
	return l.Addr().String()
}

// TestServerVersionsFlagsDataLossReleases: a member on a release with known
// data-loss bugs is named with the reason, a fixed one is not, and one that
// refuses srvr or is down is reported as unknown (issue 20).
func TestServerVersionsFlagsDataLossReleases(t *testing.T) {
	real := zktest.Start(t)
	old := fakeSrvr(t, "Zookeeper version: 3.8.0-11+deb12u2, built on 2023-01-01 00:00 UTC\nMode: follower\n")
	refusing := fakeSrvr(t, "srvr is not executed because it is not in the whitelist.\n")
	down := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := serverVersions(ctx, []string{real.Addr(), old, refusing, down})
	if len(got) != 4 {
		t.Fatalf("got %d answers, want 4", len(got))
	}
	if got[0].Err != nil || got[0].Version.Major != 3 || got[0].DataLoss != "" {
		t.Errorf("harness server: %+v, want a safe version", got[0])
	}
	if got[1].Err != nil || got[1].Version.String() != "3.8.0" || !strings.Contains(got[1].DataLoss, "ZOOKEEPER-4643") {
		t.Errorf("3.8.0 member: %+v, want flagged with the reason", got[1])
	}
	if got[2].Err == nil || !strings.Contains(got[2].Err.Error(), "whitelist") {
		t.Errorf("refusing member: %+v, want an error naming the whitelist", got[2])
	}
	if got[3].Err == nil {
		t.Errorf("down member: %+v, want an error", got[3])
	}
}

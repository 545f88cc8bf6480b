// Package zkversion reads ZooKeeper server versions and knows which releases
// have bugs that lose acknowledged writes, so that Sluice can refuse to trust
// them quietly: the server and proxy warn at connect, and the test harness
// will not run CI on them.
package zkversion

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Version is a ZooKeeper release number, e.g. 3.9.3.
type Version struct {
	Major, Minor, Patch int
}

// String returns the version as "major.minor.patch".
func (v Version) String() string {
	return strconv.Itoa(v.Major) + "." + strconv.Itoa(v.Minor) + "." + strconv.Itoa(v.Patch)
}

// Less reports whether v is an older release than w.
func (v Version) Less(w Version) bool {
	if v.Major != w.Major {
		return v.Major < w.Major
	}
	if v.Minor != w.Minor {
		return v.Minor < w.Minor
	}
	return v.Patch < w.Patch
}

// Parse reads a version from any of the forms ZooKeeper and its packages
// print: "3.9.3", "3.9.3-1+deb13u1", "Zookeeper version: 3.8.0-…, built on …"
// (the first line of the srvr four-letter word), or a jar name such as
// "zookeeper-3.8.0.jar". It returns an error naming the text when no
// major.minor.patch number is found.
func Parse(s string) (Version, error) {
	text := s
	if i := strings.Index(text, "version:"); i >= 0 {
		text = text[i+len("version:"):]
	}
	text = strings.TrimSpace(text)
	text = strings.TrimPrefix(text, "zookeeper-")
	end := 0
	for end < len(text) && (text[end] == '.' || (text[end] >= '0' && text[end] <= '9')) {
		end++
	}
	parts := strings.Split(strings.TrimSuffix(text[:end], "."), ".")
	if len(parts) < 3 {
		return Version{}, fmt.Errorf("zkversion: no ZooKeeper version in %q", truncate(s, 80))
	}
	var n [3]int
	for i := range n {
		v, err := strconv.Atoi(parts[i])
		if err != nil {
			return Version{}, fmt.Errorf("zkversion: no ZooKeeper version in %q", truncate(s, 80))
		}
		n[i] = v
	}
	return Version{Major: n[0], Minor: n[1], Patch: n[2]}, nil
}

// Minimum safe releases of the two maintained lines. Every ZooKeeper before
// them can lose transactions that a quorum acknowledged when a leader or
// follower dies during synchronisation (ZOOKEEPER-4643, ZOOKEEPER-4646,
// ZOOKEEPER-4785), which Sluice sees as lost publishes and reissued revision
// numbers.
var (
	MinSafe38 = Version{3, 8, 4}
	MinSafe39 = Version{3, 9, 2}
)

// KnownDataLoss reports whether v is a release with known bugs that lose
// acknowledged writes, and if so why, in one sentence for a log line.
func KnownDataLoss(v Version) (reason string, bad bool) {
	const why = "loses acknowledged writes when a leader or follower dies during sync (ZOOKEEPER-4643/4646/4785)"
	switch {
	case v.Major > 3 || (v.Major == 3 && v.Minor >= 10):
		return "", false
	case v.Major == 3 && v.Minor == 9:
		if v.Less(MinSafe39) {
			return fmt.Sprintf("ZooKeeper %s %s; use %s or newer", v, why, MinSafe39), true
		}
		return "", false
	case v.Major == 3 && v.Minor == 8:
		if v.Less(MinSafe38) {
			return fmt.Sprintf("ZooKeeper %s %s; use %s or newer", v, why, MinSafe38), true
		}
		return "", false
	default:
		return fmt.Sprintf("ZooKeeper %s is end of life and %s; use %s or %s or newer", v, why, MinSafe38, MinSafe39), true
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// FourLetterWord sends a ZooKeeper four-letter-word command (srvr, mntr, …)
// to addr (host:port) and returns the answer. It gives up when ctx ends.
// A server that does not allow the command answers with a sentence saying
// so ("… is not executed because it is not in the whitelist."), which is
// returned as an error.
func FourLetterWord(ctx context.Context, addr, cmd string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := io.WriteString(c, cmd); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(c, 1<<20))
	if err != nil && len(b) == 0 {
		return "", err
	}
	if s := string(b); strings.Contains(s, "not executed because it is not in the whitelist") {
		return "", fmt.Errorf("zkversion: %s: %s", addr, strings.TrimSpace(s))
	}
	return string(b), nil
}

// Ask asks the server at addr for its version with the srvr four-letter
// word, which ZooKeeper allows by default.
func Ask(ctx context.Context, addr string) (Version, error) {
	out, err := FourLetterWord(ctx, addr, "srvr")
	if err != nil {
		return Version{}, err
	}
	return Parse(firstLine(out))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

package testkit

import (
	"net"
	"testing"
)

// FreeAddr returns a 127.0.0.1 address ("127.0.0.1:port") that was free a
// moment ago, for a process or server that must be told its address before
// it listens (a child process, a configuration file). Another listener may
// take it in between; a test that can listen itself should use
// net.Listen("tcp", "127.0.0.1:0") instead.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free loopback port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

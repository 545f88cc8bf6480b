package fasthttpengine

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestFiredDeadlineDoomsItsConnection: once the watchdog cut a read, the
// connection's later bounds (a transition the connection made as the
// deadline passed: the header arriving, the connection going idle) do not
// lift it again: its next read fails at once, and an upstream connection
// is not pooled.
func TestFiredDeadlineDoomsItsConnection(t *testing.T) {
	e := &Engine{tick: 10 * time.Millisecond, coarseMin: 100 * time.Millisecond}
	e.clock.Store(time.Now().UnixNano())
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	var rb readBound
	e.bound(&rb, a, time.Second)
	rb.d.fire(e.clock.Load()+int64(2*time.Second), a) // the watchdog, past the deadline
	e.bound(&rb, a, 0)                                // the header came as it fired
	e.bound(&rb, a, time.Minute)                      // idle
	e.bound(&rb, a, 50*time.Millisecond)              // a short one, on the socket
	go b.Write([]byte("x"))
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after the deadline fired: %v, want a timeout", err)
	}
	if !rb.doomed {
		t.Fatal("not doomed")
	}

	p := newPools(nil, 4, time.Minute)
	up := &upConn{Conn: a, addr: "x"}
	up.rb.doom(a)
	p.put(up, 0)
	if got := p.get("x", 0); got != nil {
		t.Fatal("a doomed upstream connection went back to the pool")
	}
}

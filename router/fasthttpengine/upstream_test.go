package fasthttpengine

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// closeCounter is a connection that counts its Close calls.
type closeCounter struct {
	net.Conn
	closed *atomic.Int64
}

func (c closeCounter) Close() error { c.closed.Add(1); return nil }

// Sweeping an address's pool empty while connections are given back to it
// loses none: each one ends idle in the pool (to be taken again) or
// closed.
func TestPoolsSweepRacingPutLosesNoConnection(t *testing.T) {
	p := newPools(func(context.Context, string) (net.Conn, error) { return nil, nil }, 1<<20, time.Millisecond)
	var closed atomic.Int64
	const n = 2000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	swept := make(chan struct{})
	go func() { // sweeps all the while: the pool empties again and again
		defer close(swept)
		for {
			select {
			case <-stop:
				return
			default:
				p.sweep(time.Now().UnixNano())
			}
		}
	}()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Most of them given back long ago: the sweep closes those.
			at := time.Now().UnixNano()
			if i%8 != 0 {
				at -= int64(time.Hour)
			}
			p.put(&upConn{Conn: closeCounter{closed: &closed}, addr: "a:1"}, at)
		}()
	}
	wg.Wait()
	close(stop)
	<-swept
	idle := 0
	for _, hp := range *p.hosts.Load() {
		idle += len(hp.idle)
	}
	if got := int(closed.Load()) + idle; got != n {
		t.Fatalf("%d connections closed + %d idle = %d, want %d", closed.Load(), idle, got, n)
	}
}

// A connection given back after the pools closed is closed, and get finds
// nothing.
func TestPoolsClosedClosesWhatComesBack(t *testing.T) {
	p := newPools(func(context.Context, string) (net.Conn, error) { return nil, nil }, 8, time.Minute)
	var closed atomic.Int64
	p.put(&upConn{Conn: closeCounter{closed: &closed}, addr: "a:1"}, time.Now().UnixNano())
	p.close()
	p.put(&upConn{Conn: closeCounter{closed: &closed}, addr: "a:1"}, time.Now().UnixNano())
	if closed.Load() != 2 {
		t.Fatalf("%d closed, want 2", closed.Load())
	}
	if c := p.get("a:1", time.Now().UnixNano()); c != nil {
		t.Fatal("get found a connection after close")
	}
}

package zkstore_test

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ZooKeeper request codes.
const (
	opGetData = 4
	opMulti   = 14
)

// proxy is a TCP proxy between a store and ZooKeeper that can cut the
// network in ways a real outage does: a partition (every connection closed,
// new ones refused), or a connection dropped right after a multi request
// was forwarded, before its reply reaches the client.
type proxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	down  bool

	cutMulti  atomic.Int32      // multi requests still to cut after forwarding
	dropMulti atomic.Int32      // multi requests still to drop, cutting the connection, before forwarding
	cuts      atomic.Int32      // multi requests cut or dropped so far
	lastMulti atomic.Int64      // size in bytes of the last multi request forwarded
	requests  [256]atomic.Int32 // requests forwarded, by opcode
	wg        sync.WaitGroup
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.closeAll()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

// Partition closes every connection and refuses new ones until Heal.
func (p *proxy) Partition() {
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	p.closeAll()
}

// Heal lets connections through again.
func (p *proxy) Heal() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

func (p *proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			client.Close()
			continue
		}
		if !p.track(client, server) {
			client.Close()
			server.Close()
			continue
		}
		var mute atomic.Bool
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			defer p.untrack(client, server)
			p.clientToServer(client, server, &mute)
		}()
		go func() {
			defer p.wg.Done()
			defer p.untrack(client, server)
			buf := make([]byte, 32<<10)
			for {
				n, err := server.Read(buf)
				if n > 0 && !mute.Load() {
					if _, werr := client.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// clientToServer forwards frames; the first is the connect request, every
// later one starts with xid and opcode.
func (p *proxy) clientToServer(client, server net.Conn, mute *atomic.Bool) {
	first := true
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(client, hdr[:]); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(client, body); err != nil {
			return
		}
		cut := false
		op := int32(-1)
		if !first && len(body) >= 8 {
			op = int32(binary.BigEndian.Uint32(body[4:8]))
			if op >= 0 && op < int32(len(p.requests)) {
				p.requests[op].Add(1)
			}
		}
		if op == opMulti {
			if n := p.dropMulti.Load(); n > 0 && p.dropMulti.CompareAndSwap(n, n-1) {
				// Sent, as far as the client knows, but never arrives.
				p.cuts.Add(1)
				return
			}
			p.lastMulti.Store(int64(len(body)))
			if n := p.cutMulti.Load(); n > 0 && p.cutMulti.CompareAndSwap(n, n-1) {
				cut = true
				mute.Store(true) // the reply must not reach the client
			}
		}
		first = false
		if _, err := server.Write(append(hdr[:], body...)); err != nil {
			return
		}
		if cut {
			// Give the server time to apply the transaction, then drop
			// the connection as a network failure would.
			time.Sleep(200 * time.Millisecond)
			p.cuts.Add(1)
			return
		}
	}
}

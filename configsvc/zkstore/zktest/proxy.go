package zktest

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ZooKeeper request codes, for Proxy.Requests.
const (
	OpGetData = 4
	OpMulti   = 14

	opPing     = 11
	opAuth     = 100
	opSetWatch = 101
)

// Proxy is a TCP proxy on 127.0.0.1 between clients and one server, for
// fault tests: it takes one client's network away while the server and the
// other clients carry on. It can
//
//   - Partition: close every connection and refuse new ones (the client sees
//     the connection fail at once);
//   - Blackhole: keep connections open but pass no byte either way, and
//     accept new connections without forwarding them (the client notices
//     only by its own timeouts, like a silent network partition);
//   - CutAfterMulti / DropMulti / DropMultis (ZooKeeper framing only): lose
//     transactions' replies, or the transactions themselves, and drop the
//     connection, so the client cannot know whether they were applied.
//
// It also counts requests by opcode (Requests) and measures the last
// transaction it forwarded (LastMultiSize). Heal undoes Partition and
// Blackhole. Methods are safe for concurrent use.
// The proxy, its connections and its goroutines end at the test's cleanup.
type Proxy struct {
	ln     net.Listener
	target string
	framed bool // client→server bytes are ZooKeeper frames

	mu       sync.Mutex
	conns    map[*link]struct{}
	refuse   bool // partitioned
	hole     bool // black-holed
	cutMulti int  // multi requests still to forward and then cut
	dropped  func()
	dropN    int  // multi requests still to drop unsent
	trap     bool // PartitionAtNextRequest is armed
	cuts     int  // multi requests cut or dropped so far
	wg       sync.WaitGroup

	requests  [256]atomic.Int64 // requests seen from clients, by opcode (framed proxies only)
	lastMulti atomic.Int64      // size of the last multi request forwarded (framed proxies only)
}

// link is one proxied connection.
type link struct {
	client, server net.Conn    // server is nil for a connection accepted while black-holed
	doomed         bool        // lived through a black hole: closed at Heal (guarded by Proxy.mu)
	mute           atomic.Bool // the server's replies no longer reach the client
}

func (l *link) close() {
	l.client.Close()
	if l.server != nil {
		l.server.Close()
	}
}

// StartProxy starts a Proxy in front of the ZooKeeper server at target
// ("host:port"). It reads the client's bytes as ZooKeeper frames, which
// CutAfterMulti and DropMulti need; for any other protocol use
// StartTCPProxy.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	return startProxy(t, target, true)
}

// StartTCPProxy starts a Proxy that forwards bytes as they come, for any
// TCP protocol (an HTTP server, say). CutAfterMulti and DropMulti do
// nothing on it.
func StartTCPProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	return startProxy(t, target, false)
}

func startProxy(t testing.TB, target string, framed bool) *Proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("zktest: proxy: %v", err)
	}
	p := &Proxy{ln: ln, target: target, framed: framed, conns: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for l := range p.conns {
			l.close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// Addr returns where clients connect, "127.0.0.1:PORT".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Partition closes every connection and refuses new ones until Heal.
func (p *Proxy) Partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = true
	for l := range p.conns {
		l.close()
	}
}

// Blackhole stops passing bytes in both directions without closing
// anything; connections accepted meanwhile reach no server. Heal closes
// the connections that lived through it, as their peers would have given
// up on them by then.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hole = true
	for l := range p.conns {
		l.doomed = true
	}
}

// Heal lets new connections through again and ends Partition and
// Blackhole.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse, p.hole = false, false
	for l := range p.conns {
		if l.doomed {
			l.close()
		}
	}
}

// CutAfterMulti makes the proxy forward the next n multi requests to the
// server and then drop their connection before the reply reaches the
// client: the transaction is applied, the client cannot know it.
func (p *Proxy) CutAfterMulti(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutMulti = n
}

// DropMulti makes the proxy swallow the next multi request without sending
// it, call then (when not nil, on the proxy's goroutine, before anything
// else happens to the connection), and drop the connection: the
// transaction is not applied, the client cannot know it. then is where a
// test makes another client act in that window.
func (p *Proxy) DropMulti(then func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropN, p.dropped = 1, then
}

// DropMultis makes the proxy swallow each of the next n multi requests
// as DropMulti does, without a callback, dropping the connection each time:
// a network that loses every transaction (n large) or a few. n = 0 stops
// dropping; it replaces what DropMulti or DropMultis armed before.
func (p *Proxy) DropMultis(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropN, p.dropped = max(n, 0), nil
}

// PartitionAtNextRequest makes the proxy partition (as Partition does) at
// the next request a client sends that is not a ping, an authentication or
// the re-setting of its watches: typically the first thing a client does
// with a session it just got. The request is not forwarded. Heal undoes it
// as any partition.
func (p *Proxy) PartitionAtNextRequest() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trap = true
}

// Partitioned reports whether the proxy is partitioned now (by Partition
// or by the request PartitionAtNextRequest waited for).
func (p *Proxy) Partitioned() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refuse
}

// Requests reports how many requests with opcode op (OpGetData, OpMulti …)
// clients have sent through a proxy from StartProxy, dropped ones included.
// Tests count round trips with it.
func (p *Proxy) Requests(op int32) int64 {
	if op < 0 || op >= int32(len(p.requests)) {
		return 0
	}
	return p.requests[op].Load()
}

// LastMultiSize reports the size in bytes of the last multi request
// (transaction) a proxy from StartProxy forwarded to the server, without
// its 4-byte length prefix; 0 before the first. Tests measure what a write
// costs on the wire with it.
func (p *Proxy) LastMultiSize() int64 { return p.lastMulti.Load() }

// Cuts reports how many multi requests CutAfterMulti, DropMulti and
// DropMultis have cut so far.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

// add registers l unless partitioned; holed reports a black hole.
func (p *Proxy) add(l *link) (ok, holed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refuse {
		return false, false
	}
	p.conns[l] = struct{}{}
	if p.hole {
		l.doomed = true
	}
	return true, p.hole
}

func (p *Proxy) remove(l *link) {
	p.mu.Lock()
	delete(p.conns, l)
	p.mu.Unlock()
	l.close()
}

// passing reports whether bytes may flow now.
func (p *Proxy) passing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.hole
}

func (p *Proxy) serve(c net.Conn) {
	l := &link{client: c}
	ok, holed := p.add(l)
	if !ok {
		c.Close()
		return
	}
	defer p.remove(l)
	if holed {
		// Accepted into the black hole: read and drop until Heal closes it.
		_, _ = io.Copy(io.Discard, c)
		return
	}
	server, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	l.server = server
	_, present := p.conns[l]
	closed := p.refuse || !present
	p.mu.Unlock()
	if closed {
		server.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		if p.framed {
			p.frames(l)
		} else {
			p.pipe(server, c, nil)
		}
	}()
	go func() {
		defer func() { done <- struct{}{} }()
		p.pipe(c, server, &l.mute)
	}()
	<-done
	l.close()
	<-done
}

// pipe copies src to dst, dropping what it reads while black-holed or,
// when mute is not nil, while it is set.
func (p *Proxy) pipe(dst, src net.Conn, mute *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && p.passing() && (mute == nil || !mute.Load()) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// frames forwards the client's ZooKeeper frames: the first is the connect
// request, every later one starts with xid and opcode.
func (p *Proxy) frames(l *link) {
	first := true
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(l.client, hdr[:]); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(l.client, body); err != nil {
			return
		}
		var op int32 = -1
		if !first && len(body) >= 8 {
			op = int32(binary.BigEndian.Uint32(body[4:8]))
		}
		if op >= 0 && op < int32(len(p.requests)) {
			p.requests[op].Add(1)
		}
		multi := op == OpMulti
		first = false
		var cut bool
		var then func()
		p.mu.Lock()
		switch {
		case op >= 0 && p.trap && op != opPing && op != opAuth && op != opSetWatch:
			p.trap, p.refuse = false, true
			for c := range p.conns {
				c.close()
			}
			p.mu.Unlock()
			return
		case multi && p.dropN > 0:
			p.dropN--
			p.cuts++
			then, p.dropped = p.dropped, nil
			p.mu.Unlock()
			if then != nil {
				then()
			}
			return
		case multi && p.cutMulti > 0:
			p.cutMulti--
			cut = true
		}
		hole := p.hole
		p.mu.Unlock()
		if hole {
			continue
		}
		if multi {
			p.lastMulti.Store(int64(len(body)))
		}
		if cut {
			l.mute.Store(true) // the reply must not reach the client
		}
		if _, err := l.server.Write(append(hdr[:], body...)); err != nil {
			return
		}
		if cut {
			// Give the server time to apply the transaction, then drop the
			// connection as a network failure would.
			time.Sleep(200 * time.Millisecond)
			p.mu.Lock()
			p.cuts++
			p.mu.Unlock()
			return
		}
	}
}

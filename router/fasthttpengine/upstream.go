package fasthttpengine

import (
	"bufio"
	"context"
	"maps"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// upConn is a connection to an upstream instance with its buffers.
type upConn struct {
	net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	addr   string
	idleAt time.Time // when it went back to the pool
}

// Buffer sizes of an upstream connection. The reader's bounds the
// upstream's response header.
const (
	upReadBuffer  = 16 << 10
	upWriteBuffer = 16 << 10
)

// pools keeps idle keep-alive connections per upstream address, most
// recently used first. Safe for concurrent use: taking and giving back a
// connection lock only its address's pool (the map of addresses is an
// immutable snapshot, replaced when an address comes or goes).
type pools struct {
	dial    func(ctx context.Context, addr string) (net.Conn, error)
	maxIdle int
	idleFor time.Duration

	hosts  atomic.Pointer[map[string]*hostPool]
	closed atomic.Bool
	mu     sync.Mutex // serializes replacing hosts
}

type hostPool struct {
	mu   sync.Mutex
	idle []*upConn
	gone bool // dropped from pools.hosts: a connection given back goes to its successor
}

func newPools(dial func(ctx context.Context, addr string) (net.Conn, error), maxIdle int, idleFor time.Duration) *pools {
	p := &pools{dial: dial, maxIdle: maxIdle, idleFor: idleFor}
	p.hosts.Store(&map[string]*hostPool{})
	return p
}

// get returns an idle connection to addr, or nil.
func (p *pools) get(addr string, now time.Time) *upConn {
	hp := (*p.hosts.Load())[addr]
	if hp == nil {
		return nil
	}
	for {
		hp.mu.Lock()
		n := len(hp.idle)
		if n == 0 {
			hp.mu.Unlock()
			return nil
		}
		c := hp.idle[n-1]
		hp.idle[n-1] = nil
		hp.idle = hp.idle[:n-1]
		hp.mu.Unlock()
		if now.Sub(c.idleAt) < p.idleFor {
			return c
		}
		c.Close()
	}
}

// dialConn connects to addr.
func (p *pools) dialConn(ctx context.Context, addr string) (*upConn, error) {
	nc, err := p.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &upConn{Conn: nc, br: bufio.NewReaderSize(nc, upReadBuffer), bw: bufio.NewWriterSize(nc, upWriteBuffer), addr: addr}, nil
}

// put returns c to its pool, or closes it when the pool is full or closed.
func (p *pools) put(c *upConn, now time.Time) {
	c.idleAt = now
	for {
		hp := (*p.hosts.Load())[c.addr]
		if hp == nil {
			hp = p.addHost(c.addr)
		}
		hp.mu.Lock()
		if hp.gone {
			hp.mu.Unlock()
			continue // swept meanwhile: its successor
		}
		ok := len(hp.idle) < p.maxIdle && !p.closed.Load()
		if ok {
			hp.idle = append(hp.idle, c)
		}
		hp.mu.Unlock()
		if !ok {
			c.Close()
		}
		return
	}
}

// addHost returns addr's pool, adding it to a new snapshot of the map.
func (p *pools) addHost(addr string) *hostPool {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.hosts.Load()
	if hp := old[addr]; hp != nil {
		return hp
	}
	m := maps.Clone(old)
	if m == nil {
		m = map[string]*hostPool{}
	}
	hp := &hostPool{}
	m[addr] = hp
	p.hosts.Store(&m)
	return hp
}

// sweep closes connections idle for longer than idleFor and forgets
// addresses without any.
func (p *pools) sweep(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.hosts.Load()
	var m map[string]*hostPool
	for addr, hp := range old {
		hp.mu.Lock()
		keep := hp.idle[:0]
		for _, c := range hp.idle {
			if now.Sub(c.idleAt) >= p.idleFor {
				c.Close()
			} else {
				keep = append(keep, c)
			}
		}
		clear(hp.idle[len(keep):])
		hp.idle = keep
		if len(keep) == 0 {
			hp.gone = true
			if m == nil {
				m = maps.Clone(old)
			}
			delete(m, addr)
		}
		hp.mu.Unlock()
	}
	if m != nil {
		p.hosts.Store(&m)
	}
}

// close closes every idle connection; connections given back later are
// closed too.
func (p *pools) close() {
	p.closed.Store(true)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, hp := range *p.hosts.Load() {
		hp.mu.Lock()
		for _, c := range hp.idle {
			c.Close()
		}
		hp.idle = nil
		hp.mu.Unlock()
	}
	p.hosts.Store(&map[string]*hostPool{})
}

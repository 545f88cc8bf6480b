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
	idleAt int64     // when it went back to the pool (the engine's clock)
	rb     readBound // a try's wait for the answer; doomed: not to be used again
}

// Buffer sizes of an upstream connection. The reader's bounds the
// upstream's response header.
const (
	upReadBuffer  = 16 << 10
	upWriteBuffer = 16 << 10
)

// pools keeps idle keep-alive connections per upstream address, most
// recently used first. Safe for concurrent use: a request takes and gives
// back a connection under its address's lock only; the map of addresses
// is a snapshot, replaced under mu when an address comes or goes.
type pools struct {
	dial    func(ctx context.Context, addr string) (net.Conn, error)
	maxIdle int
	idleFor time.Duration

	hosts  atomic.Pointer[map[string]*hostPool]
	mu     sync.Mutex // replacing hosts
	closed bool       // under mu
}

type hostPool struct {
	mu   sync.Mutex
	idle []*upConn
	gone bool // no longer in hosts: a connection given back looks again
}

func newPools(dial func(ctx context.Context, addr string) (net.Conn, error), maxIdle int, idleFor time.Duration) *pools {
	p := &pools{dial: dial, maxIdle: maxIdle, idleFor: idleFor}
	p.hosts.Store(&map[string]*hostPool{})
	return p
}

// get returns an idle connection to addr, or nil.
// now is the engine's clock.
func (p *pools) get(addr string, now int64) *upConn {
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
		if time.Duration(now-c.idleAt) < p.idleFor {
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

// put returns c to its pool, or closes it when the pool is full or closed
// or c is doomed. now is the engine's clock.
func (p *pools) put(c *upConn, now int64) {
	if c.rb.doomed {
		c.Close()
		return
	}
	c.idleAt = now
	for {
		if hp := (*p.hosts.Load())[c.addr]; hp != nil {
			hp.mu.Lock()
			if !hp.gone {
				ok := len(hp.idle) < p.maxIdle
				if ok {
					hp.idle = append(hp.idle, c)
				}
				hp.mu.Unlock()
				if !ok {
					c.Close()
				}
				return
			}
			hp.mu.Unlock() // swept or closed meanwhile: look again
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.Close()
			return
		}
		if old := *p.hosts.Load(); old[c.addr] == nil {
			hosts := make(map[string]*hostPool, len(old)+1)
			maps.Copy(hosts, old)
			hosts[c.addr] = &hostPool{}
			p.hosts.Store(&hosts)
		}
		p.mu.Unlock()
	}
}

// sweep closes connections idle for longer than idleFor and forgets
// addresses without any.
func (p *pools) sweep(now int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.hosts.Load()
	hosts := make(map[string]*hostPool, len(old))
	for addr, hp := range old {
		hp.mu.Lock()
		keep := hp.idle[:0]
		for _, c := range hp.idle {
			if time.Duration(now-c.idleAt) >= p.idleFor {
				c.Close()
			} else {
				keep = append(keep, c)
			}
		}
		clear(hp.idle[len(keep):])
		hp.idle = keep
		if len(keep) == 0 {
			hp.gone = true
		} else {
			hosts[addr] = hp
		}
		hp.mu.Unlock()
	}
	p.hosts.Store(&hosts)
}

// close closes every idle connection; connections given back later are
// closed too.
func (p *pools) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, hp := range *p.hosts.Load() {
		hp.mu.Lock()
		for _, c := range hp.idle {
			c.Close()
		}
		hp.idle = nil
		hp.gone = true
		hp.mu.Unlock()
	}
	p.hosts.Store(&map[string]*hostPool{})
}

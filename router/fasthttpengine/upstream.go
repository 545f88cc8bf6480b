package fasthttpengine

import (
	"bufio"
	"context"
	"net"
	"sync"
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
// recently used first. Safe for concurrent use.
type pools struct {
	dial    func(ctx context.Context, addr string) (net.Conn, error)
	maxIdle int
	idleFor time.Duration

	mu     sync.RWMutex
	hosts  map[string]*hostPool
	closed bool
}

type hostPool struct {
	mu   sync.Mutex
	idle []*upConn
}

func newPools(dial func(ctx context.Context, addr string) (net.Conn, error), maxIdle int, idleFor time.Duration) *pools {
	return &pools{dial: dial, maxIdle: maxIdle, idleFor: idleFor, hosts: map[string]*hostPool{}}
}

// get returns an idle connection to addr, or nil.
// now is the engine's clock.
func (p *pools) get(addr string, now int64) *upConn {
	p.mu.RLock()
	hp := p.hosts[addr]
	p.mu.RUnlock()
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
		p.mu.RLock()
		if p.closed {
			p.mu.RUnlock()
			c.Close()
			return
		}
		if hp := p.hosts[c.addr]; hp != nil {
			hp.mu.Lock()
			ok := len(hp.idle) < p.maxIdle
			if ok {
				hp.idle = append(hp.idle, c)
			}
			hp.mu.Unlock()
			p.mu.RUnlock()
			if !ok {
				c.Close()
			}
			return
		}
		p.mu.RUnlock()
		p.mu.Lock()
		if p.hosts[c.addr] == nil && !p.closed {
			p.hosts[c.addr] = &hostPool{}
		}
		p.mu.Unlock()
	}
}

// sweep closes connections idle for longer than idleFor and forgets
// addresses without any.
func (p *pools) sweep(now int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, hp := range p.hosts {
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
		empty := len(keep) == 0
		hp.mu.Unlock()
		if empty {
			delete(p.hosts, addr)
		}
	}
}

// close closes every idle connection; connections given back later are
// closed too.
func (p *pools) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for addr, hp := range p.hosts {
		hp.mu.Lock()
		for _, c := range hp.idle {
			c.Close()
		}
		hp.idle = nil
		hp.mu.Unlock()
		delete(p.hosts, addr)
	}
}

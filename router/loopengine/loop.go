//go:build linux

package loopengine

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluicehq/sluice/router"
)

// A loop is one event loop: a goroutine locked to its thread, waiting on
// its own epoll (level-triggered) for its client connections, their
// upstream connections and its idle upstream pool. Everything below runs
// on the loop's thread but post, which other goroutines use to hand it
// work (a new connection, a dial's result, shutdown).
type loop struct {
	e    *Engine
	r    *router.Router
	ep   int
	wake int // an eventfd: post wakes the loop through it

	mu    sync.Mutex
	queue []func(*loop)
	dead  bool // the loop has stopped: post runs what it is given at once

	fds      map[int]any // fd → *client or *upstream
	idle     map[string][]*upstream
	buf      []byte       // upstream reads
	req      []byte       // a request being built
	now      int64        // UnixNano, read after each wait
	timers   []timer      // a heap of near deadlines, soonest first
	sweepAt  int64        // the next sweep of far deadlines (0: none set)
	nserved  atomic.Int64 // requests served (Engine.Counts)
	stop     bool
	draining bool
}

// Client connection states.
const (
	stHead    = iota // waiting for a request head
	stBody           // reading a request's body
	stDial           // waiting for an upstream connection
	stWait           // waiting for the upstream's response head
	stBackoff        // waiting before a retry; the last try's answer kept
	stResp           // passing the response body on
)

// client is a client connection on a loop, with the request it serves.
type client struct {
	fd       int
	w        watched
	ip       []byte // the peer's address as X-Forwarded-For writes it
	remote   string
	in       []byte // read from the client; the request starts at off
	off      int
	out      []byte // not written to the client yet
	st       int
	deadline int64 // UnixNano; 0: none
	closing  bool  // close once out is written
	gone     bool  // closed or handed off
	handoff  bool  // to the fast engine once out is written
	eof      bool  // the client sent all it will: close after the answer

	// The request being served.
	rh      reqHead
	headLen int
	x       *router.Exchange
	try     router.Try
	up      *upstream
	seq     uint64 // tells the dial of this try from an earlier one's
	redial  bool   // a pooled connection failed before answering: dialed afresh once
	lastErr error
	rs      respHead
	left    int64 // body bytes left (Content-Length)
	ch      chunked
	toClose bool // the response body ends when the upstream closes
	shut    bool // the client's connection closes after the response
}

// upstream is a connection to an upstream instance: idle in the loop's
// pool (owner nil) or carrying owner's request.
type upstream struct {
	fd     int
	w      watched
	addr   string
	owner  *client
	in     []byte // the response head as it arrives
	out    []byte // the request, not written yet
	reused bool   // taken from the pool for this try
	idleAt int64
}

// maxOut bounds what a client's out buffer takes before the upstream is
// no longer read until it drains.
const maxOut = 256 << 10

// upstreamIdleFor is how long an idle upstream connection is kept.
const upstreamIdleFor = 90 * time.Second

func newLoop(e *Engine) (*loop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return nil, err
	}
	l := &loop{e: e, r: e.r, ep: ep, wake: wake, fds: map[int]any{}, idle: map[string][]*upstream{},
		buf: make([]byte, 64<<10)}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		unix.Close(ep)
		unix.Close(wake)
		return nil, err
	}
	return l, nil
}

// post hands f to the loop, which runs it on its thread; once the loop has
// stopped, f runs at once on the caller's.
func (l *loop) post(f func(*loop)) {
	l.mu.Lock()
	if l.dead {
		l.mu.Unlock()
		f(l)
		return
	}
	first := len(l.queue) == 0
	l.queue = append(l.queue, f)
	l.mu.Unlock()
	if first {
		var one = [8]byte{1}
		_, _ = unix.Write(l.wake, one[:])
	}
}

// drain, called from Shutdown, has the loop close its idle connections and
// close the others after their responses; it returns how many client
// connections are left.
func (l *loop) drain() int {
	res := make(chan int, 1)
	l.post(func(l *loop) {
		l.draining = true
		n := 0
		for _, o := range l.fds {
			if c, ok := o.(*client); ok {
				if c.st == stHead && len(c.in) == c.off && len(c.out) == 0 {
					l.closeClient(c)
					continue
				}
				n++
			}
		}
		res <- n
	})
	return <-res
}

func (l *loop) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	evs := make([]unix.EpollEvent, 256)
	for !l.stop {
		timeout := -1
		if next := l.nextDeadline(); next > 0 {
			timeout = int(max(next-l.now+int64(time.Millisecond)-1, 0) / int64(time.Millisecond))
		}
		n, err := unix.EpollWait(l.ep, evs, timeout)
		l.now = time.Now().UnixNano()
		if err != nil && err != unix.EINTR {
			l.e.log.Error("epoll_wait", "err", err)
			break
		}
		for i := range max(n, 0) {
			ev := &evs[i]
			if int(ev.Fd) == l.wake {
				l.runQueue()
				continue
			}
			l.dispatch(int(ev.Fd), ev.Events)
		}
		l.expire()
	}
	for _, o := range l.fds {
		switch o := o.(type) {
		case *client:
			l.closeClient(o)
		case *upstream:
			l.closeUpstream(o)
		}
	}
	l.mu.Lock()
	l.dead = true
	l.mu.Unlock()
	l.runQueue() // dials that came back: their connections are closed
	unix.Close(l.ep)
	unix.Close(l.wake)
}

// dispatch hands fd's events to its connection. A panic there (a bug, or
// an adapter's: the router runs limiters and breakers on the loop) is
// logged with its stack and closes that connection, and its upstream
// one, without the router (whose exchange may be half done): the loop
// and its other connections go on, as net/http's server goes on after a
// handler's panic.
func (l *loop) dispatch(fd int, ev uint32) {
	defer l.recoverConn(fd)
	switch o := l.fds[fd].(type) {
	case *client:
		l.clientEvent(o, ev)
	case *upstream:
		l.upstreamEvent(o, ev)
	}
}

// guarded runs f, work for the connection fd (a timeout, a dial's
// result), as dispatch runs an event.
func (l *loop) guarded(fd int, f func()) {
	defer l.recoverConn(fd)
	f()
}

// recoverConn, deferred, turns a panic into the close of connection fd.
func (l *loop) recoverConn(fd int) {
	if v := recover(); v != nil {
		l.e.log.Error("loop engine: panic serving a connection; it is closed", "panic", v, "stack", string(debug.Stack()))
		l.abandon(fd)
	}
}

// abandon closes the connection of fd after a panic, with its peer.
func (l *loop) abandon(fd int) {
	c, _ := l.fds[fd].(*client)
	if u, ok := l.fds[fd].(*upstream); ok {
		c = u.owner
		l.closeUpstream(u)
	}
	if c == nil || c.gone {
		return
	}
	if u := c.up; u != nil {
		l.closeUpstream(u)
	}
	c.x, c.up = nil, nil // not ended: the router's state for it may be half made
	l.forget(c)
	unix.Close(c.fd)
}

func (l *loop) runQueue() {
	var b [8]byte
	_, _ = unix.Read(l.wake, b[:])
	l.mu.Lock()
	q := l.queue
	l.queue = nil
	l.mu.Unlock()
	for _, f := range q {
		f(l)
	}
}

// watched is what a descriptor is watched for.
type watched struct {
	ev    uint32
	added bool
}

// watch sets the events fd is watched for (errors and hang-ups are
// reported whatever they are).
func (l *loop) watch(fd int, w *watched, ev uint32) {
	if w.added && w.ev == ev {
		return
	}
	op := unix.EPOLL_CTL_MOD
	if !w.added {
		op = unix.EPOLL_CTL_ADD
	}
	w.ev, w.added = ev, true
	_ = unix.EpollCtl(l.ep, op, fd, &unix.EpollEvent{Events: ev, Fd: int32(fd)})
}

// Timers. A deadline at least coarseMin away (the header's, the idle
// connection's, a route's usual timeout) is found by a sweep of the loop's
// connections every sweepEvery while any is set, up to sweepEvery late: no
// work per request beyond storing it. A nearer one (a retry's backoff, a
// short per-try timeout) also goes on a heap and fires on time.
const (
	sweepEvery = 100 * time.Millisecond
	coarseMin  = time.Second
)

// timer is a near deadline of c; stale when c's deadline changed since.
type timer struct {
	at int64
	c  *client
}

// arm sets c's deadline d from now (0: none).
func (l *loop) arm(c *client, d time.Duration) {
	if d <= 0 {
		c.deadline = 0
		return
	}
	c.deadline = l.now + int64(d)
	if d < coarseMin {
		l.push(timer{c.deadline, c})
	}
	l.sweepSoon()
}

// sweepSoon makes sure a sweep is due.
func (l *loop) sweepSoon() {
	if l.sweepAt == 0 {
		l.sweepAt = l.now + int64(sweepEvery)
	}
}

// nextDeadline is when the loop must wake next (0: nothing is due).
func (l *loop) nextDeadline() int64 {
	next := l.sweepAt
	if len(l.timers) > 0 && (next == 0 || l.timers[0].at < next) {
		next = l.timers[0].at
	}
	return next
}

// expire acts on the deadlines passed: the near ones on the heap, and, when
// a sweep is due, every one.
func (l *loop) expire() {
	for len(l.timers) > 0 && l.timers[0].at <= l.now {
		t := l.pop()
		if c := t.c; !c.gone && c.deadline == t.at {
			c.deadline = 0
			l.guarded(c.fd, func() { l.timeout(c) })
		}
	}
	if l.sweepAt == 0 || l.now < l.sweepAt {
		return
	}
	l.sweepAt = 0
	set := false
	for _, o := range l.fds {
		switch o := o.(type) {
		case *client:
			if o.deadline > 0 && l.now >= o.deadline {
				o.deadline = 0
				l.guarded(o.fd, func() { l.timeout(o) })
			}
			set = set || !o.gone && o.deadline > 0
		case *upstream:
			if o.owner == nil {
				if l.now >= o.idleAt+int64(upstreamIdleFor) {
					l.dropIdle(o)
				} else {
					set = true
				}
			}
		}
	}
	if set {
		l.sweepSoon()
	}
}

func (l *loop) push(t timer) {
	h := append(l.timers, t)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if h[p].at <= h[i].at {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
	l.timers = h
}

func (l *loop) pop() timer {
	h := l.timers
	t := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = timer{}
	h = h[:n]
	for i := 0; ; {
		m, a, b := i, 2*i+1, 2*i+2
		if a < n && h[a].at < h[m].at {
			m = a
		}
		if b < n && h[b].at < h[m].at {
			m = b
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	l.timers = h
	return t
}

// addClient starts serving a new client connection.
func (l *loop) addClient(fd int, remote *net.TCPAddr) {
	if l.draining {
		unix.Close(fd)
		return
	}
	c := &client{fd: fd, in: make([]byte, 0, 4<<10)}
	if remote != nil {
		c.remote = remote.String()
		if a, ok := netip.AddrFromSlice(remote.IP); ok {
			c.ip = a.Unmap().AppendTo(nil)
		}
	}
	l.fds[fd] = c
	l.watch(fd, &c.w, unix.EPOLLIN|unix.EPOLLRDHUP)
	l.arm(c, l.e.opts.ReadHeaderTimeout)
}

// clientWatch sets c's events for its state: reads while a request is
// being read, writes while out holds bytes.
func (l *loop) clientWatch(c *client) {
	// Reads go on while a request is served (level-triggered: a ready
	// client left unread would wake the loop again and again), into the
	// buffer, up to a bound: a watch changed per request would cost two
	// epoll_ctl calls.
	var ev uint32
	if !c.closing && !c.handoff && !c.eof && len(c.in)-c.off <= l.e.opts.MaxHeaderBytes+router.MaxRetryBodyBytes {
		ev = unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if len(c.out) > 0 {
		ev |= unix.EPOLLOUT
	}
	l.watch(c.fd, &c.w, ev)
}

func (l *loop) clientEvent(c *client, ev uint32) {
	if ev&unix.EPOLLOUT != 0 && !l.flush(c) {
		return
	}
	if c.closing || c.handoff || c.eof {
		if ev&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			l.closeClient(c)
		}
		return
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		l.readClient(c)
	}
}

// resume serves the next requests buffered from c, after an event ended
// one.
func (l *loop) resume(c *client) {
	if !c.gone && !c.closing && !c.handoff && c.st == stHead {
		l.serveNext(c)
	}
}

// readClient reads what the client sent and serves the requests it
// completes.
func (l *loop) readClient(c *client) {
	if cap(c.in)-len(c.in) < 2<<10 {
		// The unread part moves to the front only between requests: a
		// request's head points into the buffer. Growing keeps the old
		// array as it is.
		if c.st == stHead && c.off > 0 && c.off >= len(c.in)/2 {
			n := copy(c.in, c.in[c.off:])
			c.in, c.off = c.in[:n], 0
		}
		if cap(c.in)-len(c.in) < 2<<10 {
			grown := make([]byte, len(c.in), 2*cap(c.in)+4<<10)
			copy(grown, c.in)
			c.in = grown
		}
	}
	n, err := unix.Read(c.fd, c.in[len(c.in):cap(c.in)])
	if n <= 0 {
		if err == unix.EAGAIN || err == unix.EINTR {
			return
		}
		if err == nil && (c.x != nil && c.st != stBody || c.x == nil && len(c.out) > 0) {
			// The client is done sending while its request is served,
			// or its answers are still being written (a half-close): it
			// gets them, then the close.
			c.eof, c.shut = true, true
			if c.x == nil {
				c.closing = true
			}
			l.clientWatch(c)
			return
		}
		l.closeClient(c) // EOF or broken: a request half read dies with it
		return
	}
	c.in = c.in[:len(c.in)+n]
	if c.st != stHead && c.st != stBody {
		l.clientWatch(c) // a pipelined request, kept for later: up to a bound
		return
	}
	switch c.st {
	case stHead:
		l.serveNext(c)
	case stBody:
		if len(c.in)-c.off >= c.headLen+c.rh.cl {
			l.firstTry(c)
		}
	}
}

// serveNext serves the requests whose heads are in c's buffer, one at a
// time: it returns when one waits for its body or upstream, or for more
// bytes.
func (l *loop) serveNext(c *client) {
	for c.st == stHead && !c.gone && !c.closing {
		h := c.in[c.off:]
		if len(h) == 0 {
			c.in, c.off = c.in[:0], 0
			return
		}
		end := headEnd(h)
		if end < 0 {
			if len(h) > l.e.opts.MaxHeaderBytes {
				l.handOff(c)
			} else if c.deadline == 0 || c.deadline > l.now+int64(l.e.opts.ReadHeaderTimeout) {
				l.arm(c, l.e.opts.ReadHeaderTimeout) // its first bytes: the header's bound from now
			}
			return
		}
		rh, ok := parseRequest(h[:end], router.MaxRetryBodyBytes)
		if !ok || end > l.e.opts.MaxHeaderBytes {
			l.handOff(c)
			return
		}
		c.rh, c.headLen = rh, end
		c.shut = rh.close || l.draining
		x, a := l.r.Begin(c)
		if a != nil {
			if len(h) < end+rh.cl {
				a.Close = true // its body is not read
			}
			l.answer(c, x, a)
			continue
		}
		c.x = x
		if len(h) < end+rh.cl {
			c.st = stBody
			l.arm(c, l.r.BodyTimeout())
			return
		}
		l.firstTry(c)
	}
}

// handOff gives c to the fast engine with what was read of it, once what
// the loop wrote to it is out.
func (l *loop) handOff(c *client) {
	if len(c.out) > 0 {
		c.handoff = true // no reads; flush calls handOff again
		l.clientWatch(c)
		return
	}
	pre := append([]byte(nil), c.in[c.off:]...)
	l.forget(c)
	l.e.handOff(c.fd, pre)
}

// forget takes c off the loop without closing its descriptor.
func (l *loop) forget(c *client) {
	c.gone = true
	if c.w.added {
		_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, c.fd, nil)
	}
	delete(l.fds, c.fd)
}

// answer writes an answer of the router's to c's request and ends it.
func (l *loop) answer(c *client, x *router.Exchange, a *router.Answer) {
	if a.Status == 499 {
		l.r.End(x, 0)
		l.closeClient(c)
		return
	}
	shut := c.shut || a.Close || l.draining
	l.write(c, appendAnswer(l.req[:0], a, shut))
	l.r.End(x, 0)
	c.x = nil
	l.served(c, shut)
}

// served ends c's request: its bytes are consumed, and c waits for the
// next one (or closes, shut).
func (l *loop) served(c *client, shut bool) {
	l.nserved.Add(1)
	c.off = min(c.off+c.headLen+c.rh.cl, len(c.in))
	if c.off == len(c.in) {
		c.in, c.off = c.in[:0], 0
		if cap(c.in) > 32<<10 {
			c.in = make([]byte, 0, 4<<10) // a long body's buffer is not kept
		}
	}
	c.headLen, c.rh, c.up, c.lastErr, c.redial = 0, reqHead{}, nil, nil, false
	c.st = stHead
	if shut {
		c.closing = true
		if len(c.out) == 0 {
			l.closeClient(c)
		} else {
			l.clientWatch(c)
		}
		return
	}
	if c.gone {
		return
	}
	l.clientWatch(c)
	l.arm(c, l.e.opts.IdleTimeout)
}

// firstTry starts forwarding c's request, whose body is in.
func (l *loop) firstTry(c *client) {
	t, err := c.x.FirstTry(true)
	if err != nil {
		l.fail(c, err)
		return
	}
	c.try = t
	l.send(c)
}

// send sends c's try: on an idle pooled connection to its address, else
// on one dialed for it.
func (l *loop) send(c *client) {
	c.st = stDial
	c.deadline = 0
	l.clientWatch(c)
	if !c.redial {
		if u := l.takeIdle(c.try.Addr); u != nil {
			u.reused = true
			l.attach(c, u)
			return
		}
	}
	c.seq++
	seq, addr, e := c.seq, c.try.Addr, l.e
	e.dials.Add(1)
	go func() {
		defer e.dials.Done()
		nc, err := e.r.DialUpstream(e.ctx, addr)
		fd := -1
		if err == nil {
			if sc, ok := nc.(syscall.Conn); ok {
				if raw, rerr := sc.SyscallConn(); rerr == nil {
					_ = raw.Control(func(s uintptr) { fd, _ = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
				}
			}
			nc.Close()
			if fd < 0 {
				err = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("cannot take the connection's descriptor")}
			}
		}
		l.post(func(l *loop) { l.guarded(c.fd, func() { l.dialed(c, seq, addr, fd, err) }) })
	}()
}

// dialed receives a dial's result for c's try seq.
func (l *loop) dialed(c *client, seq uint64, addr string, fd int, err error) {
	if c.gone || c.seq != seq || c.st != stDial || l.stop || l.dead {
		if fd >= 0 {
			unix.Close(fd)
		}
		return
	}
	if err != nil {
		l.tryDone(c, 0, err)
	} else {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		u := &upstream{fd: fd, addr: addr}
		l.fds[fd] = u
		l.attach(c, u)
	}
	l.resume(c)
}

// attach sends c's request on u.
func (l *loop) attach(c *client, u *upstream) {
	c.up, u.owner = u, c
	u.in = u.in[:0]
	c.st = stWait
	l.arm(c, c.try.Timeout)
	h := c.in[c.off:]
	l.req = appendRequest(l.req[:0], &c.rh, c.x.StripPrefix(), c.x.TrustedPeer(), c.ip, h[c.headLen:c.headLen+c.rh.cl])
	n, err := unix.Write(u.fd, l.req)
	if err != nil && err != unix.EAGAIN {
		l.upstreamFailed(c, &upstreamError{"write", err})
		return
	}
	n = max(n, 0)
	if n < len(l.req) {
		u.out = append(u.out[:0], l.req[n:]...)
	}
	l.upstreamWatch(u)
}

// upstreamWatch sets u's events: reads while its owner waits for the
// answer or passes its body on with room in the client's buffer, writes
// while the request is not all out; an idle connection is watched for
// the upstream closing it.
func (l *loop) upstreamWatch(u *upstream) {
	ev := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if c := u.owner; c != nil {
		if c.st == stBackoff || c.st == stResp && len(c.out) > maxOut {
			ev = 0
		}
		if len(u.out) > 0 {
			ev |= unix.EPOLLOUT
		}
	}
	l.watch(u.fd, &u.w, ev)
}

func (l *loop) upstreamEvent(u *upstream, ev uint32) {
	c := u.owner
	if c == nil {
		l.dropIdle(u) // the upstream closed it, or sent what nobody asked for
		return
	}
	if ev&unix.EPOLLOUT != 0 && len(u.out) > 0 {
		n, err := unix.Write(u.fd, u.out)
		if err != nil && err != unix.EAGAIN {
			l.upstreamFailed(c, &upstreamError{"write", err})
			return
		}
		u.out = u.out[max(n, 0):]
		l.upstreamWatch(u)
	}
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
		return
	}
	switch c.st {
	case stWait:
		l.readHead(c, u)
	case stResp:
		l.readBody(c, u)
	case stBackoff:
		// Its answer is kept unread, but a hang-up is reported watched or
		// not: unwatched until the answer is wanted, the loop does not
		// spin on it.
		_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, u.fd, nil)
		u.w = watched{}
	}
	l.resume(c)
}

// readHead reads the upstream's answer until its head is in.
func (l *loop) readHead(c *client, u *upstream) {
	if cap(u.in)-len(u.in) < 4<<10 {
		grown := make([]byte, len(u.in), 2*cap(u.in)+8<<10)
		copy(grown, u.in)
		u.in = grown
	}
	n, err := unix.Read(u.fd, u.in[len(u.in):cap(u.in)])
	if n <= 0 {
		if err == unix.EAGAIN || err == unix.EINTR {
			return
		}
		if err == nil {
			err = errEOF
		}
		l.upstreamFailed(c, &upstreamError{"read", err})
		return
	}
	u.in = u.in[:len(u.in)+n]
	for {
		end := headEnd(u.in)
		if end < 0 {
			if len(u.in) > 64<<10 {
				l.upstreamFailed(c, &upstreamError{"read", errMalformed})
			}
			return
		}
		rs, err := parseResponse(u.in[:end])
		if err != nil || rs.status == 101 {
			l.upstreamFailed(c, &upstreamError{"read", errMalformed})
			return
		}
		if rs.status < 200 { // 100 Continue, 103 Early Hints: the answer follows
			u.in = u.in[:copy(u.in, u.in[end:])]
			continue
		}
		c.rs = rs
		l.tryDone(c, rs.status, nil)
		return
	}
}

var errEOF = errors.New("connection closed before the answer")

// upstreamError is a try that broke after connecting: a reset (502, and
// retried on "reset").
type upstreamError struct {
	op  string
	err error
}

func (e *upstreamError) Error() string { return "upstream " + e.op + ": " + e.err.Error() }
func (e *upstreamError) Unwrap() error { return e.err }

// upstreamFailed ends c's try on a broken upstream connection. A pooled
// one that broke before a byte of the answer came is one the upstream had
// closed: the try goes again on a new connection, once.
func (l *loop) upstreamFailed(c *client, err error) {
	u := c.up
	fresh := u != nil && u.reused && len(u.in) == 0 && !c.redial
	if u != nil {
		l.closeUpstream(u)
		c.up = nil
	}
	if fresh {
		c.redial = true
		l.send(c)
		return
	}
	l.tryDone(c, 0, err)
}

// tryDone tells the router how c's try ended and goes on as it says: a
// retry after its backoff, the answer passed on, or an error answer.
func (l *loop) tryDone(c *client, status int, err error) {
	c.deadline = 0
	wait, retry := c.x.TryDone(status, err, false)
	c.lastErr = err
	if retry {
		c.st = stBackoff
		if u := c.up; u != nil {
			l.upstreamWatch(u) // keep its answer, unread, in case no retry goes
		}
		if wait <= 0 {
			l.nextTry(c)
			return
		}
		l.arm(c, wait)
		return
	}
	if err != nil {
		l.fail(c, err)
		return
	}
	l.respond(c)
}

// nextTry sends the retry, or, when the router has none left, passes the
// last try's answer on.
func (l *loop) nextTry(c *client) {
	t, ok := c.x.NextTry()
	if !ok {
		if c.lastErr != nil {
			l.fail(c, c.lastErr)
		} else {
			l.respond(c)
		}
		return
	}
	if u := c.up; u != nil {
		l.closeUpstream(u) // the retried try's answer
		c.up = nil
	}
	c.try, c.redial = t, false
	l.send(c)
}

// fail answers c's request with the router's answer to err.
func (l *loop) fail(c *client, err error) {
	if u := c.up; u != nil {
		l.closeUpstream(u)
		c.up = nil
	}
	x := c.x
	c.x = nil
	a := x.ErrorAnswer(err)
	if c.st == stBody {
		a.Close = true
	}
	l.answer(c, x, a)
}

// respond passes the upstream's answer, whose head is in c.up.in, on to
// the client, with what of its body came along, in one write, and goes on
// passing its body.
func (l *loop) respond(c *client) {
	u := c.up
	end := headEnd(u.in)
	rs := &c.rs
	bodyless := rs.bodyless(c.rh.method)
	c.toClose = !bodyless && rs.cl < 0 && !rs.chunked
	if c.toClose || c.eof || l.draining {
		c.shut = true // draining: the client must not send another request on it
	}
	c.st = stResp
	c.left, c.ch = rs.cl, chunked{}
	if bodyless {
		c.left = 0
	}
	l.req = appendResponse(l.req[:0], u.in[:end], c.shut)
	l.passBody(c, l.req, u.in[end:])
}

// readBody reads the next bytes of the answer's body and passes them on.
func (l *loop) readBody(c *client, u *upstream) {
	n, err := unix.Read(u.fd, l.buf)
	if n <= 0 {
		if err == unix.EAGAIN || err == unix.EINTR {
			return
		}
		if c.toClose && err == nil {
			c.rs.keep = false
			l.respDone(c)
			return
		}
		// The body broke off: the client's connection closes too, so
		// that it sees the answer is cut.
		l.closeUpstream(u)
		c.up = nil
		l.endExchange(c)
		l.closeClient(c)
		return
	}
	l.passBody(c, nil, l.buf[:n])
}

// passBody writes head (if any) and what of p, the answer's next bytes,
// belongs to its body to the client, and ends the request when the body
// ended.
func (l *loop) passBody(c *client, head, p []byte) {
	n, done := len(p), false
	switch {
	case c.left == 0:
		n, done = 0, true
	case c.toClose:
	case c.rs.chunked:
		var err error
		n, done, err = c.ch.feed(p)
		if err != nil {
			l.write(c, head)
			l.closeUpstream(c.up)
			c.up = nil
			l.endExchange(c)
			l.closeClient(c)
			return
		}
	default:
		if int64(n) >= c.left {
			n, done = int(c.left), true
		}
		c.left -= int64(n)
	}
	if head != nil {
		l.write(c, append(head, p[:n]...))
	} else {
		l.write(c, p[:n])
	}
	if c.gone {
		return
	}
	if done {
		if n < len(p) {
			c.rs.keep = false // more than the answer: not to be trusted again
		}
		l.respDone(c)
		return
	}
	l.upstreamWatch(c.up) // reads on, or not while the client's buffer is full
}

// respDone ends c's request once its answer is passed on: the upstream
// connection goes back to the pool when it can carry another request.
func (l *loop) respDone(c *client) {
	if u := c.up; u != nil {
		c.up = nil
		if c.rs.keep && len(u.out) == 0 && !l.draining {
			l.putIdle(u)
		} else {
			l.closeUpstream(u)
		}
	}
	l.endExchange(c)
	l.served(c, c.shut)
}

// endExchange ends c's exchange, if it has one.
func (l *loop) endExchange(c *client) {
	if x := c.x; x != nil {
		c.x = nil
		l.r.End(x, 0)
	}
}

// write writes p to the client, keeping what its socket does not take.
func (l *loop) write(c *client, p []byte) {
	if c.gone || len(p) == 0 {
		return
	}
	if len(c.out) == 0 {
		n, err := unix.Write(c.fd, p)
		if err != nil && err != unix.EAGAIN {
			l.closeClient(c)
			return
		}
		p = p[max(n, 0):]
		if len(p) == 0 {
			return
		}
	}
	c.out = append(c.out, p...)
	l.clientWatch(c)
}

// flush writes c's pending bytes; false when c is closed.
func (l *loop) flush(c *client) bool {
	n, err := unix.Write(c.fd, c.out)
	if err != nil && err != unix.EAGAIN {
		l.closeClient(c)
		return false
	}
	c.out = c.out[max(n, 0):]
	if len(c.out) > 0 {
		return true
	}
	c.out = c.out[:0:0]
	if c.closing {
		l.closeClient(c)
		return false
	}
	if c.handoff { // a hand-off waiting for the writes
		c.handoff = false
		l.handOff(c)
		return false
	}
	l.clientWatch(c)
	if c.st == stResp && c.up != nil {
		l.upstreamWatch(c.up) // room again
	}
	l.resume(c)
	return !c.gone
}

var errClientGone = errors.New("client went away")

// closeClient closes c, its upstream connection and its exchange.
func (l *loop) closeClient(c *client) {
	if c.gone {
		return
	}
	if u := c.up; u != nil {
		l.closeUpstream(u)
		c.up = nil
	}
	if c.x != nil {
		st := 0
		if c.st != stResp {
			st = 499
		}
		if c.st == stDial || c.st == stWait {
			c.x.TryDone(0, errClientGone, true)
		}
		l.r.End(c.x, st)
		c.x = nil
	}
	l.forget(c)
	unix.Close(c.fd)
	c.in, c.out = nil, nil
}

// timeout acts on c's deadline.
func (l *loop) timeout(c *client) {
	switch c.st {
	case stHead:
		if len(c.in) == c.off {
			l.closeClient(c) // idle
			return
		}
		c.shut = true
		l.write(c, appendAnswer(l.req[:0], router.NewAnswer(408, "invalid", "the request did not arrive in time"), true))
		c.closing = true
		if len(c.out) == 0 {
			l.closeClient(c)
		}
	case stBody:
		l.fail(c, errBodyTimeout)
	case stWait:
		if u := c.up; u != nil {
			l.closeUpstream(u)
			c.up = nil
		}
		l.tryDone(c, 0, os.ErrDeadlineExceeded)
	case stBackoff:
		l.nextTry(c)
	}
	l.resume(c)
}

// errBodyTimeout is a request body that did not arrive in time.
var errBodyTimeout = &bodyError{router.ErrBodyTimeout}

type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// Pool.

func (l *loop) takeIdle(addr string) *upstream {
	us := l.idle[addr]
	for len(us) > 0 {
		u := us[len(us)-1]
		us[len(us)-1] = nil
		us = us[:len(us)-1]
		l.idle[addr] = us
		if time.Duration(l.now-u.idleAt) < upstreamIdleFor {
			return u
		}
		l.closeUpstream(u)
	}
	return nil
}

func (l *loop) putIdle(u *upstream) {
	us := l.idle[u.addr]
	if len(us) >= max(l.r.MaxIdleConnsPerHost(), 1) {
		l.closeUpstream(u)
		return
	}
	u.owner, u.reused, u.in, u.out = nil, false, u.in[:0], u.out[:0]
	u.idleAt = l.now
	l.idle[u.addr] = append(us, u)
	l.upstreamWatch(u)
	l.sweepSoon()
}

// dropIdle closes an idle connection and takes it out of the pool.
func (l *loop) dropIdle(u *upstream) {
	us := l.idle[u.addr]
	for i, v := range us {
		if v == u {
			us = append(us[:i], us[i+1:]...)
			break
		}
	}
	if len(us) == 0 {
		delete(l.idle, u.addr)
	} else {
		l.idle[u.addr] = us
	}
	l.closeUpstream(u)
}

func (l *loop) closeUpstream(u *upstream) {
	if u.fd < 0 {
		return
	}
	if u.w.added {
		_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, u.fd, nil)
	}
	delete(l.fds, u.fd)
	unix.Close(u.fd)
	u.fd, u.owner = -1, nil
}

// Inbound: the request being served, as the router reads it.

var _ router.Inbound = (*client)(nil)

func (c *client) Method() string { return b2s(c.rh.method) }
func (c *client) Host() string   { return b2s(c.rh.host) }
func (c *client) Path() string   { return b2s(c.rh.path()) }
func (c *client) Header(name string) string {
	v, _, _ := field(c.rh.fields, name)
	return b2s(v)
}
func (c *client) HeaderValues(name string) []string {
	var out []string
	for v, rest, ok := field(c.rh.fields, name); ok; v, rest, ok = field(rest, name) {
		out = append(out, b2s(v))
	}
	return out
}

// Cookie walks the Cookie lines in place (no slice of them: the router
// looks the pin cookie up on every request that has cookies).
func (c *client) Cookie(name string) string {
	for v, rest, ok := field(c.rh.fields, "Cookie"); ok; v, rest, ok = field(rest, "Cookie") {
		for s := b2s(v); s != ""; {
			var part string
			part, s, _ = strings.Cut(s, ";")
			if k, val, _ := strings.Cut(part, "="); strings.TrimSpace(k) == name {
				return strings.TrimSpace(val)
			}
		}
	}
	return ""
}
func (c *client) RemoteAddr() string       { return c.remote }
func (c *client) Context() context.Context { return context.Background() }

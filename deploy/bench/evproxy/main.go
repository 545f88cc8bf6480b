//go:build linux

// Command evproxy is the second calibration peer of the proxy benchmark
// (deploy/bench/proxy.sh): an HTTP/1.1 forwarder in Go that does not use a
// goroutine per connection. One event loop per core (a locked thread on
// its own level-triggered epoll and its own SO_REUSEPORT listener), each
// client connection paired with one upstream connection. It parses the
// request head, adds X-Forwarded-For, -Host and -Proto as nginx is told to
// in the benchmark, streams a Content-Length body through, and forwards
// the answer by its Content-Length.
//
// It measures what a Go data plane built like nginx reaches on the machine,
// beside bareproxy (fasthttp: a goroutine per connection). It is not a
// proxy: no chunked bodies, no TLS, no timeouts, no route logic, Linux only.
package main

import (
	"bytes"
	"flag"
	"log"
	"net"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// conn is one side of a client–upstream pair.
type conn struct {
	fd, peer int    // peer: the paired connection's fd (-1: not dialed yet)
	client   bool   // the client's side
	head     []byte // a head read in part
	left     int    // body bytes still to pass through; -1: a head is awaited
	out      []byte // bytes the socket did not take yet (EPOLLOUT is on)
	ip       []byte // the client's address (client side)
}

type loop struct {
	ep    int
	ln    int
	conns map[int]*conn
	up    unix.SockaddrInet4
	buf   []byte
	req   []byte
}

func main() {
	addr := flag.String("addr", "127.0.0.1:19007", "address to listen on")
	upstream := flag.String("upstream", "127.0.0.1:19000", "the backend's address")
	loops := flag.Int("loops", runtime.NumCPU(), "event loops (threads)")
	flag.Parse()
	if _, err := start(*addr, *upstream, *loops); err != nil {
		log.Fatal(err)
	}
	select {}
}

// start starts loops event loops forwarding addr (IPv4; port 0: one is
// chosen) to upstream and returns the address they listen on.
func start(addr, upstream string, loops int) (string, error) {
	la, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return "", err
	}
	ua, err := net.ResolveTCPAddr("tcp4", upstream)
	if err != nil {
		return "", err
	}
	for i := 0; i < loops; i++ {
		l := &loop{conns: map[int]*conn{}, buf: make([]byte, 64<<10)}
		copy(l.up.Addr[:], ua.IP.To4())
		l.up.Port = ua.Port
		if err := l.listen(la); err != nil {
			return "", err
		}
		if la.Port == 0 { // the next loops share the port chosen
			sa, err := unix.Getsockname(l.ln)
			if err != nil {
				return "", err
			}
			la.Port = sa.(*unix.SockaddrInet4).Port
		}
		go l.run()
	}
	return la.String(), nil
}

// listen opens l's listener on la (SO_REUSEPORT: every loop has its own)
// and its epoll.
func (l *loop) listen(la *net.TCPAddr) (err error) {
	if l.ln, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
		return err
	}
	if err = unix.SetsockoptInt(l.ln, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return err
	}
	sa := &unix.SockaddrInet4{Port: la.Port}
	copy(sa.Addr[:], la.IP.To4())
	if err = unix.Bind(l.ln, sa); err != nil {
		return err
	}
	if err = unix.Listen(l.ln, 4096); err != nil {
		return err
	}
	if l.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return err
	}
	return unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, l.ln, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.ln)})
}

func (l *loop) run() {
	runtime.LockOSThread()
	evs := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(l.ep, evs, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		for _, ev := range evs[:n] {
			fd := int(ev.Fd)
			if fd == l.ln {
				l.accept()
				continue
			}
			c := l.conns[fd]
			if c == nil {
				continue
			}
			if ev.Events&unix.EPOLLOUT != 0 && !l.flush(c) {
				continue
			}
			if ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR|unix.EPOLLRDHUP) != 0 {
				l.read(c)
			}
		}
	}
}

func (l *loop) accept() {
	for {
		fd, sa, err := unix.Accept4(l.ln, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return
		}
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		c := &conn{fd: fd, peer: -1, client: true, left: -1}
		if s4, ok := sa.(*unix.SockaddrInet4); ok {
			c.ip = []byte(net.IP(s4.Addr[:]).String())
		}
		l.conns[fd] = c
		l.watch(unix.EPOLL_CTL_ADD, fd, false)
	}
}

func (l *loop) watch(op, fd int, out bool) {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	if out {
		ev.Events |= unix.EPOLLOUT
	}
	_ = unix.EpollCtl(l.ep, op, fd, &ev)
}

// close closes c and its peer.
func (l *loop) close(c *conn) {
	for _, fd := range []int{c.fd, c.peer} {
		if fd >= 0 && l.conns[fd] != nil {
			_ = unix.Close(fd)
			delete(l.conns, fd)
		}
	}
}

// read reads what c has (once: level-triggered) and passes it on.
func (l *loop) read(c *conn) {
	n, err := unix.Read(c.fd, l.buf)
	if n <= 0 {
		if err != unix.EAGAIN {
			l.close(c)
		}
		return
	}
	b := l.buf[:n]
	for len(b) > 0 {
		if c.left > 0 { // body bytes: pass through
			k := min(c.left, len(b))
			if !l.pass(c, b[:k]) {
				return
			}
			c.left -= k
			b = b[k:]
			if c.left == 0 {
				c.left = -1
			}
			continue
		}
		// A head: find its end.
		var h []byte
		if len(c.head) > 0 {
			c.head = append(c.head, b...)
			h = c.head
		} else {
			h = b
		}
		end := bytes.Index(h, []byte("\r\n\r\n"))
		if end < 0 {
			if len(c.head) == 0 {
				c.head = append(c.head, b...)
			}
			return
		}
		cl, host := parseHead(h[:end+2])
		if c.client {
			if c.peer < 0 && !l.dial(c) {
				l.close(c)
				return
			}
			l.req = append(l.req[:0], h[:end+2]...)
			l.req = append(l.req, "X-Forwarded-For: "...)
			l.req = append(l.req, c.ip...)
			l.req = append(l.req, "\r\nX-Forwarded-Host: "...)
			l.req = append(l.req, host...)
			l.req = append(l.req, "\r\nX-Forwarded-Proto: http\r\n\r\n"...)
			if !l.pass(c, l.req) {
				return
			}
		} else if !l.pass(c, h[:end+4]) {
			return
		}
		b = h[end+4:] // what follows the head
		c.head = c.head[:0]
		c.left = cl
		if cl == 0 {
			c.left = -1
		}
	}
}

// pass writes p to c's peer, keeping what the socket does not take.
func (l *loop) pass(c *conn, p []byte) bool {
	dst := l.conns[c.peer]
	if dst == nil {
		l.close(c)
		return false
	}
	if len(dst.out) > 0 {
		dst.out = append(dst.out, p...)
		return true
	}
	n, err := unix.Write(dst.fd, p)
	if n < 0 {
		n = 0
	}
	if err != nil && err != unix.EAGAIN {
		l.close(c)
		return false
	}
	if n < len(p) {
		dst.out = append(dst.out, p[n:]...)
		l.watch(unix.EPOLL_CTL_MOD, dst.fd, true)
	}
	return true
}

// flush writes c's pending bytes; false when c was closed.
func (l *loop) flush(c *conn) bool {
	n, err := unix.Write(c.fd, c.out)
	if n > 0 {
		c.out = c.out[n:]
	}
	if err != nil && err != unix.EAGAIN {
		l.close(c)
		return false
	}
	if len(c.out) == 0 {
		c.out = nil
		l.watch(unix.EPOLL_CTL_MOD, c.fd, false)
	}
	return true
}

// dial connects c's upstream (a blocking connect: loopback, once per
// client connection).
func (l *loop) dial(c *conn) bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	if err := unix.Connect(fd, &l.up); err != nil {
		_ = unix.Close(fd)
		return false
	}
	_ = unix.SetNonblock(fd, true)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	l.conns[fd] = &conn{fd: fd, peer: c.fd, left: -1}
	c.peer = fd
	l.watch(unix.EPOLL_CTL_ADD, fd, false)
	return true
}

// parseHead returns a head's Content-Length (0 when none) and Host.
func parseHead(h []byte) (cl int, host []byte) {
	for k, v, h, ok := nextField(h); ok; k, v, h, ok = nextField(h) {
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			cl, _ = strconv.Atoi(string(v))
		case bytes.EqualFold(k, []byte("Host")):
			host = v
		}
	}
	return cl, host
}

// nextField returns the first header field (name and trimmed value) of h,
// lines ending in LF or CRLF, lines without a colon skipped (a request or
// status line), and what follows it; ok is false when there is none.
func nextField(h []byte) (name, value, rest []byte, ok bool) {
	for len(h) > 0 {
		i := bytes.IndexByte(h, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimRight(h[:i], "\r")
		h = h[i+1:]
		if k, v, found := bytes.Cut(line, []byte(":")); found {
			return k, bytes.TrimSpace(v), h, true
		}
	}
	return nil, nil, nil, false
}

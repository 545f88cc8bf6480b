package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// fleet is a set of event streams, each a raw HTTP/1.1 connection read by
// one goroutine through a small buffer: the load generator must stay far
// cheaper than what it measures.
type fleet struct {
	hot     int            // streams [0, hot) belong to the published service
	arrived []atomic.Int64 // per hot stream: when its newest revision event arrived (unix ns)
	count   atomic.Int64   // revision events of hot streams since reset
	ready   atomic.Int64   // streams that saw their ready line
	failed  atomic.Int64
	mu      sync.Mutex
	first   error
	conns   []net.Conn
	wg      sync.WaitGroup
	closing atomic.Bool
}

// openFleet dials one stream per path on addr (paths[:hot] are the hot
// service's) with the request header head, from nsrc loopback source
// addresses (so that repeated runs do not run out of ports), at most 256
// dials at a time. A stream is ready when a line starting with readyLine
// arrived. It returns once all are ready, or the first failure, or ctx ends.
func openFleet(ctx context.Context, addr string, paths []string, hot int, head, readyLine string, nsrc int) (*fleet, error) {
	f := &fleet{hot: hot, arrived: make([]atomic.Int64, hot), conns: make([]net.Conn, len(paths))}
	sem := make(chan struct{}, 256)
	for i, p := range paths {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			f.close()
			return nil, ctx.Err()
		}
		d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%nsrc))}}
		conn, err := d.DialContext(ctx, "tcp", addr)
		<-sem
		if err != nil {
			f.close()
			return nil, fmt.Errorf("stream %d of %d: %w", i+1, len(paths), err)
		}
		f.conns[i] = conn
		if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", p, addr, head); err != nil {
			f.close()
			return nil, err
		}
		f.wg.Add(1)
		go f.read(i, conn, readyLine)
		if f.failed.Load() > 0 {
			break
		}
	}
	for f.ready.Load() < int64(len(paths)) {
		if err := f.err(); err != nil {
			f.close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.close()
			return nil, fmt.Errorf("%d of %d streams ready: %w", f.ready.Load(), len(paths), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return f, nil
}

func (f *fleet) read(i int, conn net.Conn, readyLine string) {
	defer f.wg.Done()
	br := bufio.NewReaderSize(conn, 512)
	status, err := br.ReadSlice('\n')
	if err == nil && !bytes.HasPrefix(status, []byte("HTTP/1.1 200")) {
		err = fmt.Errorf("stream %d answered %q", i, strings.TrimSpace(string(status)))
	}
	ready := false
	for err == nil {
		var line []byte
		line, err = br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) { // a long data line: the rest follows
			err = nil
			continue
		}
		switch {
		case !ready && bytes.HasPrefix(line, []byte(readyLine)):
			ready = true
			f.ready.Add(1)
		case i < f.hot && bytes.HasPrefix(line, []byte("event: revision")):
			f.arrived[i].Store(time.Now().UnixNano())
			f.count.Add(1)
		case bytes.HasPrefix(line, []byte("event: stream-error")):
			err = fmt.Errorf("stream %d: a stream-error event", i)
		}
	}
	if f.closing.Load() {
		return
	}
	f.mu.Lock()
	if f.first == nil {
		f.first = err
	}
	f.mu.Unlock()
	f.failed.Add(1)
}

func (f *fleet) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.first != nil {
		return fmt.Errorf("%d streams failed; the first: %w", f.failed.Load(), f.first)
	}
	return nil
}

// round runs one publish: it resets the arrivals, calls publish and waits
// (at most wait) until every hot stream has a revision event. It returns
// each hot stream's delivery time from the start of publish, and how many
// streams had none within wait.
func (f *fleet) round(ctx context.Context, wait time.Duration, publish func(context.Context) error) (lat []time.Duration, missing int, err error) {
	f.count.Store(0)
	start := time.Now()
	if err := publish(ctx); err != nil {
		return nil, 0, err
	}
	deadline := time.Now().Add(wait)
	for f.count.Load() < int64(f.hot) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond)
	}
	if err := f.err(); err != nil {
		return nil, 0, err
	}
	for i := range f.hot {
		t := f.arrived[i].Load()
		if t < start.UnixNano() {
			missing++
			continue
		}
		lat = append(lat, time.Duration(t-start.UnixNano()))
	}
	return lat, missing, nil
}

// close closes every stream and waits for their readers.
func (f *fleet) close() {
	f.closing.Store(true)
	for _, c := range f.conns {
		if c != nil {
			c.Close()
		}
	}
	f.wg.Wait()
}

// raiseFileLimit raises RLIMIT_NOFILE to at least n (the hard limit too,
// which root may do), or as far as allowed.
func raiseFileLimit(n uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur >= n {
		return lim.Cur, nil
	}
	want := lim
	want.Cur = n
	if want.Max < n {
		want.Max = n
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
		return n, nil
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}

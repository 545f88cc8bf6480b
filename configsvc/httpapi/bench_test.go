package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/fanout"
	"github.com/sluicehq/sluice/configsvc/format"
)

// BenchmarkGetFile measures an authenticated raw file read over loopback
// HTTP: token lookup, authorization, head and file reads on bbolt, log line,
// metrics.
func BenchmarkGetFile(b *testing.B) {
	e := newEnv(b)
	var sb strings.Builder
	for i := range 100 {
		fmt.Fprintf(&sb, "key%d: value\n", i)
	}
	e.mustService("orders", map[string]string{"db.yaml": sb.String()})
	url := e.http.URL + "/v1/services/orders/files/db.yaml"
	client := e.http.Client()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		sendOK(b, client, "GET", url, e.admin, nil)
	}
}

// BenchmarkPublishFile measures PUT of one file: a new revision on bbolt
// plus its audit entry.
func BenchmarkPublishFile(b *testing.B) {
	e := newEnv(b)
	e.mustService("orders", nil)
	url := e.http.URL + "/v1/services/orders/files/db.yaml"
	client := e.http.Client()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		sendOK(b, client, "PUT", url, e.admin, strings.NewReader(fmt.Sprintf("n: %d\n", i)))
	}
}

// sendOK sends one request with token, reads and discards the answer and
// fails b unless it is 200: the least a benchmark loop can do per request.
func sendOK(b *testing.B, client *http.Client, method, url, token string, body io.Reader) {
	req, _ := http.NewRequest(method, url, body)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("%s %s: status %d", method, url, resp.StatusCode)
	}
}

// BenchmarkIdleStreamMemory opens b.N revision streams of one service on a
// shared watch (configsvc/fanout, as `sluice server` wires it), each on its
// own HTTP/1.1 connection read until its grays baseline, and reports what
// an idle stream keeps after a collection: live heap bytes, goroutine
// stack bytes and goroutines per stream (the server's side, plus the test
// client's socket objects, a few hundred bytes; its reads use no buffer
// that outlives them). RSS is about twice the heap and stacks (GOGC=100);
// deploy/sizing measures that on a real server.
//
//	go test -run '^$' -bench IdleStreamMemory -benchtime 2000x ./configsvc/httpapi/
func BenchmarkIdleStreamMemory(b *testing.B) {
	e := newEnvOn(b, configsvc.Validating(fanout.New(bolttest.MustOpen(b, boltstore.Options{}), fanout.Options{Linger: -1}), format.Validator{}),
		func(c *Config) { c.Heartbeat = time.Hour; c.MaxStreamsPerToken = -1 })
	e.mustService("orders", map[string]string{"n.txt": "0"})
	addr := strings.TrimPrefix(e.http.URL, "http://")
	open := func() net.Conn {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(conn, "GET /v1/services/orders/watch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", e.admin)
		var got []byte
		var buf [512]byte
		for !bytes.Contains(got, []byte("event: "+api.EventGrays+"\n")) {
			n, err := conn.Read(buf[:])
			if err != nil {
				b.Fatalf("stream: %v after %q", err, got)
			}
			got = append(got, buf[:n]...)
		}
		return conn
	}
	measure := func() (heap, stack uint64, goroutines int) {
		var ms runtime.MemStats
		for range 3 {
			time.Sleep(100 * time.Millisecond) // finished requests' goroutines exit
			runtime.GC()
		}
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc, ms.StackInuse, runtime.NumGoroutine()
	}
	conns := []net.Conn{open()} // the shared watch starts
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	h0, s0, g0 := measure()
	b.ResetTimer()
	for range b.N {
		conns = append(conns, open())
	}
	b.StopTimer()
	h1, s1, g1 := measure()
	n := float64(b.N)
	b.ReportMetric((float64(h1)-float64(h0))/n, "heap-B/stream")
	b.ReportMetric((float64(s1)-float64(s0))/n, "stack-B/stream")
	b.ReportMetric(float64(g1-g0)/n, "goroutines/stream")
	runtime.KeepAlive(conns)
}

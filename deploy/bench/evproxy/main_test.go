//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestForwards checks the calibration peer does the work it is measured
// on: the answers' bodies whole (short, and longer than the sockets hold), a
// POST's body whole, X-Forwarded-* added, several requests on one
// keep-alive connection.
func TestForwards(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen", fmt.Sprintf("%s|%s|%s|%d", r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"), len(body)))
		answer := []byte("ok")
		if r.URL.Path == "/big" {
			answer = bytes.Repeat([]byte("abcdefgh"), 16<<20/8)
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(answer))) // evproxy forwards by Content-Length only
		_, _ = w.Write(answer)
	}))
	defer backend.Close()
	upstream := strings.TrimPrefix(backend.URL, "http://")
	addr, err := start("127.0.0.1:0", upstream, 2)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	for i := 0; i < 20; i++ {
		path, post := "/", []byte(nil)
		switch i % 3 {
		case 1:
			path = "/big"
		case 2:
			post = bytes.Repeat([]byte("p"), 100<<10)
		}
		var res *http.Response
		if post != nil {
			res, err = client.Post("http://"+addr+path, "application/octet-stream", bytes.NewReader(post))
		} else {
			res, err = client.Get("http://" + addr + path)
		}
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		want := 2
		if path == "/big" {
			want = 16 << 20
		}
		if len(body) != want {
			t.Fatalf("request %d: body of %d bytes, want %d", i, len(body), want)
		}
		if seen, wantSeen := res.Header.Get("X-Seen"), fmt.Sprintf("127.0.0.1|%s|http|%d", addr, len(post)); seen != wantSeen {
			t.Fatalf("request %d: the backend saw %q, want %q", i, seen, wantSeen)
		}
	}
}

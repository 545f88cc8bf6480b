package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	server := flag.String("server", "http://127.0.0.1:7070", "admin server URL")
	service := flag.String("service", "orders", "service to watch and publish to (must exist, with file sizing.txt publishable)")
	watchers := flag.Int("watchers", 1000, "event streams to open")
	timeout := flag.Duration("timeout", 2*time.Minute, "bound on the whole run")
	flag.Parse()
	token := os.Getenv("SLUICE_TOKEN")
	if token == "" {
		fmt.Fprintln(os.Stderr, "sizing: set SLUICE_TOKEN (an editor of the service)")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := run(ctx, *server, token, *service, *watchers); err != nil {
		fmt.Fprintln(os.Stderr, "sizing:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, server, token, svc string, n int) error {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n + 10}}
	do := func(method, path string, body []byte) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, method, server+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		if body != nil {
			req.Header.Set("Content-Type", "text/plain")
		}
		return hc.Do(req)
	}
	resp, err := do("GET", "/v1/services/"+svc, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET service %s: %s", svc, resp.Status)
	}
	head, _ := strconv.ParseInt(strings.Trim(resp.Header.Get("ETag"), `"`), 10, 64)

	before, err := scrape(ctx, hc, server)
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		wg        sync.WaitGroup
		connected sync.WaitGroup
		mu        sync.Mutex
		got       []time.Time
		failures  []error
	)
	connected.Add(n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t, err := stream(sctx, hc, server, token, svc, head, connected.Done)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, err)
				return
			}
			got = append(got, t)
		}()
	}
	began := time.Now()
	connected.Wait()
	fmt.Printf("%d streams open in %v\n", n, time.Since(began).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // let the server settle
	during, err := scrape(ctx, hc, server)
	if err != nil {
		return err
	}

	published := time.Now()
	resp, err = do("PUT", "/v1/services/"+svc+"/files/sizing.txt", []byte(fmt.Sprintf("sizing run %s\n", published.Format(time.RFC3339Nano))))
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("publish: %s", resp.Status)
	}
	acked := time.Since(published)
	waitAll := make(chan struct{})
	go func() { wg.Wait(); close(waitAll) }()
	select {
	case <-waitAll:
	case <-time.After(30 * time.Second):
		stop()
		<-waitAll
	}
	if len(failures) > 0 {
		return fmt.Errorf("%d of %d streams failed; the first: %w", len(failures), n, failures[0])
	}
	lat := make([]time.Duration, len(got))
	for i, t := range got {
		lat[i] = t.Sub(published)
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))].Round(100 * time.Microsecond) }
	fmt.Printf("publish acknowledged in %v; delivered to %d/%d streams: p50 %v, p99 %v, max %v\n",
		acked.Round(100*time.Microsecond), len(lat), n, pct(0.5), pct(0.99), pct(1))
	fmt.Printf("server before: rss %.1f MiB, goroutines %.0f\n", before["process_resident_memory_bytes"]/(1<<20), before["go_goroutines"])
	fmt.Printf("server with %d streams: rss %.1f MiB, goroutines %.0f, heap in use %.1f MiB, sluice_watch_subscribers %.0f\n",
		n, during["process_resident_memory_bytes"]/(1<<20), during["go_goroutines"], during["go_memstats_heap_inuse_bytes"]/(1<<20), during[`sluice_watch_subscribers{stream="revisions"}`])
	fmt.Printf("per stream: %.1f KiB rss, %.1f goroutines\n",
		(during["process_resident_memory_bytes"]-before["process_resident_memory_bytes"])/1024/float64(n),
		(during["go_goroutines"]-before["go_goroutines"])/float64(n))
	return nil
}

// stream follows one event stream from since; it calls open once the
// server answered, and returns when the first revision after since arrived.
func stream(ctx context.Context, hc *http.Client, server, token, svc string, since int64, open func()) (time.Time, error) {
	opened := false
	defer func() {
		if !opened {
			open()
		}
	}()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/v1/services/%s/watch?since=%d", server, svc, since), nil)
	if err != nil {
		return time.Time{}, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return time.Time{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return time.Time{}, fmt.Errorf("watch: %s", resp.Status)
	}
	opened = true
	open()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "event: revision") {
			return time.Now(), nil
		}
	}
	if err := sc.Err(); err != nil {
		return time.Time{}, err
	}
	return time.Time{}, errors.New("stream ended before the revision")
}

// scrape reads the unlabelled (and a few labelled) samples of /metrics.
func scrape(ctx context.Context, hc *http.Client, server string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", server+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

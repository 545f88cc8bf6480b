package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
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

func run(ctx context.Context, server, token, name string, n int) error {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n + 10}}
	defer hc.CloseIdleConnections()
	c, err := api.New(api.Config{Servers: []string{server}, Token: token, HTTPClient: hc, UserAgent: "sluice-sizing"})
	if err != nil {
		return err
	}
	svc := configsvc.Service(name)
	head, err := c.Head(ctx, svc)
	if err != nil {
		return fmt.Errorf("service %s: %w", name, err)
	}

	before, err := scrape(ctx, hc, server)
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		got      []time.Time
		failures []error
	)
	began := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t, err := firstRevision(sctx, c, svc, head.Revision)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, err)
				return
			}
			got = append(got, t)
		}()
	}
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) > 0 {
			return fmt.Errorf("%d streams failed; the first: %w", len(failures), failures[0])
		}
		return nil
	}
	if err := waitSubscribers(ctx, hc, server, before[subscribers]+float64(n), failed); err != nil {
		stop()
		wg.Wait()
		return err
	}
	fmt.Printf("%d streams open in %v\n", n, time.Since(began).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // let the server settle
	during, err := scrape(ctx, hc, server)
	if err != nil {
		return err
	}

	published := time.Now()
	if _, err := c.PutFile(ctx, svc, "sizing.txt", []byte(fmt.Sprintf("sizing run %s\n", published.Format(time.RFC3339Nano)))); err != nil {
		return fmt.Errorf("publish: %w", err)
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
		n, during["process_resident_memory_bytes"]/(1<<20), during["go_goroutines"], during["go_memstats_heap_inuse_bytes"]/(1<<20), during[subscribers])
	fmt.Printf("per stream: %.1f KiB rss, %.1f goroutines\n",
		(during["process_resident_memory_bytes"]-before["process_resident_memory_bytes"])/1024/float64(n),
		(during["go_goroutines"]-before["go_goroutines"])/float64(n))
	return nil
}

// subscribers is the server's gauge of open revision streams.
const subscribers = `sluice_watch_subscribers{stream="revisions"}`

// firstRevision follows one event stream from since and returns when the
// first revision after since arrived. Any trouble on the stream fails it:
// the run measures a healthy server.
func firstRevision(ctx context.Context, c *api.Client, svc configsvc.Ref, since int64) (time.Time, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for ev := range c.Watch(ctx, svc, since) {
		switch {
		case ev.Revision != nil:
			return time.Now(), nil
		case ev.Err != nil:
			return time.Time{}, ev.Err
		}
	}
	return time.Time{}, errors.New("stream ended before the revision")
}

// waitSubscribers polls the server's metrics until it holds at least want
// revision streams, or failed reports a stream that failed.
func waitSubscribers(ctx context.Context, hc *http.Client, server string, want float64, failed func() error) error {
	for {
		m, err := scrape(ctx, hc, server)
		if err != nil {
			return err
		}
		if err := failed(); err != nil {
			return err
		}
		if m[subscribers] >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%.0f of %.0f streams open: %w", m[subscribers], want, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
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

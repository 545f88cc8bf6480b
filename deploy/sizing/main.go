package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// options are the flags of a run.
type options struct {
	server     string
	token      string
	service    string
	watchers   int
	services   int
	perService int
	publishes  int
	peer       bool
	zk         string
	sources    int
	settle     time.Duration
	idle       time.Duration
	asJSON     bool
}

func main() {
	if limit := os.Getenv(peerEnv); limit != "" {
		d, err := time.ParseDuration(limit)
		if err == nil {
			err = servePeer(d)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "sizing broadcaster:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	flag.StringVar(&o.server, "server", "http://127.0.0.1:7070", "admin server URL (loopback)")
	flag.StringVar(&o.service, "service", "orders", "the service published to; created when missing")
	flag.IntVar(&o.watchers, "watchers", 1000, "event streams on --service")
	flag.IntVar(&o.services, "services", 0, "other services (sizing-000 …), created when missing, each with --per-service idle streams")
	flag.IntVar(&o.perService, "per-service", 0, "idle streams on each of --services")
	flag.IntVar(&o.publishes, "publishes", 5, "publishes timed (each: delivery to every stream of --service)")
	flag.BoolVar(&o.peer, "peer", false, "also measure a minimal Go SSE broadcaster on the same streams, in the same run")
	flag.StringVar(&o.zk, "zk", "", "ZooKeeper server (host:port) whose mntr packets_received is read around the publishes")
	flag.IntVar(&o.sources, "sources", 16, "loopback source addresses the streams are spread over (127.0.0.1 …)")
	flag.DurationVar(&o.settle, "settle", 3*time.Second, "pause after the streams opened, before memory is read")
	flag.DurationVar(&o.idle, "idle", 0, "then read memory again after this long idle (the Go runtime returns freed memory to the OS over minutes); 0: only once")
	flag.BoolVar(&o.asJSON, "json", false, "print the result as JSON")
	timeout := flag.Duration("timeout", 10*time.Minute, "bound on the whole run")
	flag.Parse()
	o.token = os.Getenv("SLUICE_TOKEN")
	if o.token == "" {
		fmt.Fprintln(os.Stderr, "sizing: set SLUICE_TOKEN (an editor of the services)")
		os.Exit(2)
	}
	if o.watchers < 1 || o.publishes < 1 || o.services < 0 || o.perService < 0 || o.sources < 1 || o.sources > 250 {
		fmt.Fprintln(os.Stderr, "sizing: --watchers and --publishes must be at least 1, --services and --per-service at least 0, --sources 1..250")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	res, err := run(ctx, o, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sizing:", err)
		os.Exit(1)
	}
	if o.asJSON {
		json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	res.print()
}

// side is what one run measured of the server or of the broadcaster.
type side struct {
	Streams      int     `json:"streams"`
	RSSBefore    float64 `json:"rss_before_bytes"`
	RSSAfter     float64 `json:"rss_after_bytes"`
	PerStreamKiB float64 `json:"rss_per_stream_kib"`
	// After --idle more: RSS per stream once the runtime returned what
	// the opening freed (0 without --idle).
	IdleKiB     float64 `json:"rss_per_stream_idle_kib,omitempty"`
	Goroutines  float64 `json:"goroutines_per_stream,omitempty"`
	OpenSeconds float64 `json:"open_seconds"`
	// Per publish: delivery to every hot stream, from the start of the
	// publish request.
	P50     []float64 `json:"p50_ms"`
	P99     []float64 `json:"p99_ms"`
	Max     []float64 `json:"max_ms"`
	Ack     []float64 `json:"ack_ms,omitempty"`
	Missing int       `json:"missing"`
}

// result is one run.
type result struct {
	Hot    int   `json:"hot_streams"`
	Total  int   `json:"streams"`
	Server side  `json:"server"`
	Peer   *side `json:"peer,omitempty"`
	// ZooKeeper packets received per publish, and per the same time idle.
	ZKPerPublish *float64 `json:"zk_packets_per_publish,omitempty"`
	ZKIdle       *float64 `json:"zk_packets_idle_per_interval,omitempty"`
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func (r *result) print() {
	pr := func(name string, s *side) {
		fmt.Printf("%-11s %6d streams open in %.1f s; rss %.1f → %.1f MiB: %.1f KiB per idle stream", name, s.Streams, s.OpenSeconds, s.RSSBefore/(1<<20), s.RSSAfter/(1<<20), s.PerStreamKiB)
		if s.IdleKiB > 0 {
			fmt.Printf(" (%.1f KiB after --idle)", s.IdleKiB)
		}
		if s.Goroutines > 0 {
			fmt.Printf(", %.2f goroutines", s.Goroutines)
		}
		fmt.Printf("\n%-11s publish → all %d delivered (median of %d): p50 %.1f ms, p99 %.1f ms, max %.1f ms; missing %d\n", "", r.Hot, len(s.P99), median(s.P50), median(s.P99), median(s.Max), s.Missing)
	}
	pr("server", &r.Server)
	if r.Peer != nil {
		pr("broadcaster", r.Peer)
		fmt.Printf("p99 server / broadcaster: %.2f\n", median(r.Server.P99)/median(r.Peer.P99))
	}
	if r.ZKPerPublish != nil {
		fmt.Printf("ZooKeeper packets per publish: %.1f (idle, same interval: %.1f)\n", *r.ZKPerPublish, *r.ZKIdle)
	}
}

func run(ctx context.Context, o options, limit time.Duration) (*result, error) {
	total := o.watchers + o.services*o.perService
	if got, err := raiseFileLimit(uint64(total + 1024)); err != nil || got < uint64(total+64) {
		return nil, fmt.Errorf("RLIMIT_NOFILE %d for %d streams: %v", got, total, err)
	}
	u, err := url.Parse(o.server)
	if err != nil || u.Scheme != "http" {
		return nil, fmt.Errorf("--server %q: want http://host:port", o.server)
	}
	hc := &http.Client{Timeout: time.Minute}
	c, err := api.New(api.Config{Servers: []string{o.server}, Token: o.token, HTTPClient: hc, UserAgent: "sluice-sizing"})
	if err != nil {
		return nil, err
	}
	hot := configsvc.Service(o.service)
	paths := make([]string, 0, total)
	for range o.watchers {
		paths = append(paths, "/v1/services/"+o.service+"/watch")
	}
	refs := []configsvc.Ref{hot}
	for i := range o.services {
		name := fmt.Sprintf("sizing-%03d", i)
		refs = append(refs, configsvc.Service(name))
		for range o.perService {
			paths = append(paths, "/v1/services/"+name+"/watch")
		}
	}
	for _, ref := range refs {
		if _, _, err := c.Create(ctx, ref); err != nil && !errors.Is(err, configsvc.ErrConflict) {
			return nil, fmt.Errorf("create %s: %w", ref, err)
		}
	}
	res := &result{Hot: o.watchers, Total: total}

	// The server.
	before, err := scrape(ctx, hc, o.server)
	if err != nil {
		return nil, err
	}
	began := time.Now()
	head := "Authorization: Bearer " + o.token + "\r\nAccept: text/event-stream\r\n"
	f, err := openFleet(ctx, u.Host, paths, o.watchers, head, "event: grays", o.sources)
	if err != nil {
		return nil, fmt.Errorf("server streams: %w", err)
	}
	res.Server.OpenSeconds = time.Since(began).Seconds()
	if err := sleep(ctx, o.settle); err != nil {
		f.close()
		return nil, err
	}
	after, err := scrape(ctx, hc, o.server)
	if err != nil {
		f.close()
		return nil, err
	}
	res.Server.fill(total, before["process_resident_memory_bytes"], after["process_resident_memory_bytes"])
	res.Server.Goroutines = (after["go_goroutines"] - before["go_goroutines"]) / float64(total)
	if o.idle > 0 {
		if err := sleep(ctx, o.idle); err != nil {
			f.close()
			return nil, err
		}
		later, err := scrape(ctx, hc, o.server)
		if err != nil {
			f.close()
			return nil, err
		}
		res.Server.IdleKiB = (later["process_resident_memory_bytes"] - before["process_resident_memory_bytes"]) / 1024 / float64(total)
	}
	var zk0 float64
	var phase time.Duration
	if o.zk != "" {
		// The idle rate first, over as long as the publishes take at most.
		phase = time.Duration(o.publishes) * time.Second
		a, err := packetsReceived(o.zk)
		if err != nil {
			f.close()
			return nil, err
		}
		if err := sleep(ctx, phase); err != nil {
			f.close()
			return nil, err
		}
		b, err := packetsReceived(o.zk)
		if err != nil {
			f.close()
			return nil, err
		}
		idle := (b - a) / float64(o.publishes)
		res.ZKIdle = &idle
		zk0 = b
	}
	zkStart := time.Now()
	for i := range o.publishes {
		var acked time.Duration
		lat, missing, err := f.round(ctx, 60*time.Second, func(ctx context.Context) error {
			start := time.Now()
			_, err := c.PutFile(ctx, hot, "sizing.txt", fmt.Appendf(nil, "sizing run %d %s\n", i, start.Format(time.RFC3339Nano)))
			acked = time.Since(start)
			return err
		})
		if err != nil {
			f.close()
			return nil, fmt.Errorf("publish %d: %w", i+1, err)
		}
		res.Server.add(lat, missing)
		res.Server.Ack = append(res.Server.Ack, ms(acked))
		if i < o.publishes-1 {
			_ = sleep(ctx, 200*time.Millisecond)
		}
	}
	if o.zk != "" {
		// Pad to the idle interval, so the two counts cover equal times.
		_ = sleep(ctx, phase-time.Since(zkStart))
		b, err := packetsReceived(o.zk)
		if err != nil {
			f.close()
			return nil, err
		}
		per := (b - zk0) / float64(o.publishes)
		res.ZKPerPublish = &per
	}
	f.close()
	if !o.peer {
		return res, nil
	}

	// The broadcaster, on as many streams spread the same way.
	p, err := startPeer(ctx, limit)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	peerPaths := make([]string, len(paths))
	for i, path := range paths {
		name := strings.TrimSuffix(strings.TrimPrefix(path, "/v1/services/"), "/watch")
		peerPaths[i] = "/t/" + name
	}
	rss0, err := p.rss()
	if err != nil {
		return nil, err
	}
	began = time.Now()
	pf, err := openFleet(ctx, p.addr, peerPaths, o.watchers, "Accept: text/event-stream\r\n", ": ok", o.sources)
	if err != nil {
		return nil, fmt.Errorf("broadcaster streams: %w", err)
	}
	defer pf.close()
	res.Peer = &side{OpenSeconds: time.Since(began).Seconds()}
	if err := sleep(ctx, o.settle); err != nil {
		return nil, err
	}
	rss1, err := p.rss()
	if err != nil {
		return nil, err
	}
	res.Peer.fill(total, rss0, rss1)
	if o.idle > 0 {
		if err := sleep(ctx, o.idle); err != nil {
			return nil, err
		}
		rss2, err := p.rss()
		if err != nil {
			return nil, err
		}
		res.Peer.IdleKiB = (rss2 - rss0) / 1024 / float64(total)
	}
	for i := range o.publishes {
		lat, missing, err := pf.round(ctx, 60*time.Second, func(ctx context.Context) error { return p.publish(ctx, o.service) })
		if err != nil {
			return nil, fmt.Errorf("broadcast %d: %w", i+1, err)
		}
		res.Peer.add(lat, missing)
		if i < o.publishes-1 {
			_ = sleep(ctx, 200*time.Millisecond)
		}
	}
	return res, nil
}

func (s *side) fill(streams int, before, after float64) {
	s.Streams, s.RSSBefore, s.RSSAfter = streams, before, after
	s.PerStreamKiB = (after - before) / 1024 / float64(streams)
}

func (s *side) add(lat []time.Duration, missing int) {
	s.Missing += missing
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return ms(lat[int(p*float64(len(lat)-1))]) }
	s.P50, s.P99, s.Max = append(s.P50, pct(0.5)), append(s.P99, pct(0.99)), append(s.Max, pct(1))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
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

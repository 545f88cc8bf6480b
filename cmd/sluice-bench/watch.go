package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/httpapi"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/sdk"
)

// watchOptions are the knobs of one propagation run.
type watchOptions struct {
	transport      string
	zk             string
	zkRoot         string
	clients        int
	publishes      int
	pause          time.Duration
	publishTimeout time.Duration
	timeout        time.Duration
	openParallel   int
	register       bool
	json           bool
	verbose        bool
	cpuProfile     string
}

func defaultWatchOptions() watchOptions {
	return watchOptions{
		transport: "zookeeper", zkRoot: "/sluice-bench-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		clients: 100, publishes: 200, pause: 10 * time.Millisecond,
		publishTimeout: 10 * time.Second, timeout: 10 * time.Minute, openParallel: 32,
	}
}

func (o watchOptions) validate() error {
	switch {
	case o.transport != "zookeeper" && o.transport != "http" && o.transport != "raw":
		return fmt.Errorf("--transport %q: want zookeeper, http or raw", o.transport)
	case (o.transport == "zookeeper" || o.transport == "raw") && o.zk == "":
		return fmt.Errorf("--transport %s needs --zk host:port", o.transport)
	case o.clients < 1 || o.clients > 5000:
		return fmt.Errorf("--clients %d: want 1-5000", o.clients)
	case o.publishes < 1 || o.publishes > 10000:
		return fmt.Errorf("--publishes %d: want 1-10000", o.publishes)
	case o.timeout <= 0 || o.publishTimeout <= 0 || o.openParallel < 1:
		return errors.New("--timeout, --publish-timeout and --open-parallel must be positive")
	}
	return nil
}

// watchResult is what a run measured. Latencies are from the return of the
// publish call to the OnChange callback; a callback that ran before the
// publish returned counts as 0.
type watchResult struct {
	Transport   string        `json:"transport"`
	Store       string        `json:"store"`
	Clients     int           `json:"clients"`
	Publishes   int           `json:"publishes"`
	Samples     int           `json:"samples"`
	Missing     int           `json:"missing"` // (publish, client) pairs never delivered within publish-timeout
	P50         time.Duration `json:"p50_ns"`
	P99         time.Duration `json:"p99_ns"`
	Max         time.Duration `json:"max_ns"`
	LastP50     time.Duration `json:"fanout_complete_p50_ns"` // publish → last client's callback
	LastP99     time.Duration `json:"fanout_complete_p99_ns"`
	PublishP50  time.Duration `json:"publish_call_p50_ns"`
	OpenElapsed time.Duration `json:"open_elapsed_ns"`
}

func (r *watchResult) print(w io.Writer) {
	fmt.Fprintf(w, "transport=%s store=%s clients=%d publishes=%d samples=%d missing=%d\n",
		r.Transport, r.Store, r.Clients, r.Publishes, r.Samples, r.Missing)
	fmt.Fprintf(w, "publish-return → callback: p50=%v p99=%v max=%v\n", r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond))
	fmt.Fprintf(w, "publish-return → last client: p50=%v p99=%v\n", r.LastP50.Round(time.Microsecond), r.LastP99.Round(time.Microsecond))
	fmt.Fprintf(w, "publish call p50=%v; %d clients opened in %v\n", r.PublishP50.Round(time.Microsecond), r.Clients, r.OpenElapsed.Round(time.Millisecond))
}

const (
	benchService = "bench-watch"
	benchFile    = "seq.txt"
)

func watchBench(ctx context.Context, o watchOptions, log *slog.Logger) (*watchResult, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if o.transport == "raw" {
		return rawBench(ctx, o)
	}

	// The store publishes go to, validating them like sluice server does.
	var pub configsvc.Store
	storeName := "bolt"
	if o.zk != "" {
		storeName = "zookeeper"
		st, err := zkstore.Open(ctx, zkstore.Config{Servers: strings.Split(o.zk, ","), Root: o.zkRoot, Logger: log})
		if err != nil {
			return nil, err
		}
		pub = configsvc.Validating(st, format.Validator{})
	} else {
		dir, err := os.MkdirTemp("", "sluice-bench")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		st, err := boltstore.Open(filepath.Join(dir, "sluice.db"), boltstore.Options{Logger: log})
		if err != nil {
			return nil, err
		}
		pub = configsvc.Validating(st, format.Validator{})
	}
	defer pub.Close()
	svc := configsvc.Service(benchService)
	if err := pub.Create(ctx, svc); err != nil && !errors.Is(err, configsvc.ErrConflict) {
		return nil, err
	}
	head, err := pub.Publish(ctx, svc, configsvc.Changeset{Base: mustHead(ctx, pub, svc), Author: "sluice-bench", Message: "start",
		Changes: []configsvc.Change{{File: benchFile, Content: []byte("0")}}})
	if err != nil {
		return nil, err
	}

	// How clients reach the store.
	transport := func(cfg *sdk.Config) { cfg.ZooKeeper, cfg.ZKRoot = strings.Split(o.zk, ","), o.zkRoot }
	if o.transport == "http" {
		url, token, hc, stop, err := serveAdmin(ctx, pub, o.clients, log)
		if err != nil {
			return nil, err
		}
		defer stop()
		transport = func(cfg *sdk.Config) { cfg.Server, cfg.Token, cfg.HTTPClient = url, token, hc }
	}

	// arrivals[i][c] is when client c saw publish i (unix ns; 0 = not yet).
	arrivals := make([][]atomic.Int64, o.publishes+1)
	for i := range arrivals {
		arrivals[i] = make([]atomic.Int64, o.clients)
	}
	counts := make([]atomic.Int32, o.publishes+1)
	base := head.Number

	clients := make([]*sdk.Client, o.clients)
	defer func() {
		var wg sync.WaitGroup
		for _, c := range clients {
			if c != nil {
				wg.Add(1)
				go func() { defer wg.Done(); c.Close() }()
			}
		}
		wg.Wait()
	}()
	openStart := time.Now()
	sem := make(chan struct{}, o.openParallel)
	var openErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range o.clients {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cfg := sdk.Config{Service: benchService, NoRegister: !o.register, Logger: log,
				Instance: sdk.Instance{ID: "bench-" + strconv.Itoa(i), Addr: "127.0.0.1:1"}}
			transport(&cfg)
			c, err := sdk.Open(ctx, cfg)
			if err != nil {
				mu.Lock()
				openErr = errors.Join(openErr, err)
				mu.Unlock()
				return
			}
			clients[i] = c
			c.OnChange(benchFile, func(ch sdk.Change) {
				now := time.Now().UnixNano()
				seq, err := strconv.Atoi(string(ch.New))
				if err != nil || seq < 1 || seq > o.publishes {
					return
				}
				arrivals[seq][i].Store(now)
				counts[seq].Add(1)
			})
		}()
	}
	wg.Wait()
	if openErr != nil {
		return nil, fmt.Errorf("opening clients: %w", openErr)
	}
	openElapsed := time.Since(openStart)
	for _, c := range clients {
		if c.Revision() < base {
			return nil, fmt.Errorf("a client opened at revision %d, before %d", c.Revision(), base)
		}
	}

	rev := base
	res, err := measure(ctx, o, arrivals, counts, func(seq int) error {
		r, err := pub.Publish(ctx, svc, configsvc.Changeset{Base: rev, Author: "sluice-bench", Message: "seq " + strconv.Itoa(seq),
			Changes: []configsvc.Change{{File: benchFile, Content: []byte(strconv.Itoa(seq))}}})
		if err != nil {
			return err
		}
		rev = r.Number
		return nil
	})
	if err != nil {
		return nil, err
	}
	res.Transport, res.Store, res.OpenElapsed = o.transport, storeName, openElapsed
	return res, nil
}

// measure runs o.publishes publishes through publish(seq), waiting after
// each until every client recorded it in arrivals[seq] (or publishTimeout),
// and returns the latency percentiles from each publish's return to each
// arrival.
func measure(ctx context.Context, o watchOptions, arrivals [][]atomic.Int64, counts []atomic.Int32, publish func(seq int) error) (*watchResult, error) {
	published := make([]int64, o.publishes+1)
	var publishCalls []time.Duration
	for seq := 1; seq <= o.publishes; seq++ {
		start := time.Now()
		if err := publish(seq); err != nil {
			return nil, fmt.Errorf("publish %d: %w", seq, err)
		}
		done := time.Now()
		published[seq] = done.UnixNano()
		publishCalls = append(publishCalls, done.Sub(start))
		deadline := done.Add(o.publishTimeout)
		for int(counts[seq].Load()) < o.clients && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(200 * time.Microsecond)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if o.pause > 0 {
			time.Sleep(o.pause)
		}
	}

	res := &watchResult{Clients: o.clients, Publishes: o.publishes}
	var all, last []time.Duration
	for seq := 1; seq <= o.publishes; seq++ {
		var worst time.Duration
		complete := true
		for c := range o.clients {
			at := arrivals[seq][c].Load()
			if at == 0 {
				res.Missing++
				complete = false
				continue
			}
			d := max(time.Duration(at-published[seq]), 0)
			all = append(all, d)
			worst = max(worst, d)
		}
		if complete {
			last = append(last, worst)
		}
	}
	res.Samples = len(all)
	res.P50, res.P99, res.Max = pct(all, 50), pct(all, 99), pct(all, 100)
	res.LastP50, res.LastP99 = pct(last, 50), pct(last, 99)
	res.PublishP50 = pct(publishCalls, 50)
	return res, nil
}

func mustHead(ctx context.Context, st configsvc.Store, ref configsvc.Ref) int64 {
	h, err := st.Head(ctx, ref)
	if err != nil {
		return 0
	}
	return h.Revision
}

// pct returns the p-th percentile (nearest rank) of d; p=100 is the max.
func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(min(i, len(s))-1, 0)]
}

// serveAdmin serves the admin server (configsvc/httpapi) on store on a
// loopback port and returns its URL, its bootstrap admin token, an HTTP
// client with idle connections for clients clients, and stop, which shuts
// both down.
func serveAdmin(ctx context.Context, store configsvc.Store, clients int, log *slog.Logger) (url, token string, hc *http.Client, stop func(), err error) {
	srv, err := httpapi.New(httpapi.Config{Store: store, Logger: log})
	if err != nil {
		return "", "", nil, nil, err
	}
	token, err = srv.Bootstrap(ctx)
	if err != nil || token == "" {
		srv.Close()
		return "", "", nil, nil, fmt.Errorf("bootstrap token: %q, %v", token, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return "", "", nil, nil, err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	// One shared transport with enough idle connections for every
	// client's requests; each watch holds its own stream.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = clients
	stop = func() {
		tr.CloseIdleConnections()
		hs.Close()
		srv.Close()
	}
	return "http://" + ln.Addr().String(), token, &http.Client{Transport: tr}, stop, nil
}

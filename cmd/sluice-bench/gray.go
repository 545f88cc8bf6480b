package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/sdk"
)

// grayOptions are the knobs of one gray run.
type grayOptions struct {
	clients      int
	rounds       int
	roundTimeout time.Duration
	timeout      time.Duration
	json         bool
}

func defaultGrayOptions() grayOptions {
	return grayOptions{clients: 20, rounds: 9, roundTimeout: 20 * time.Second, timeout: 5 * time.Minute}
}

func parseGrayFlags(args []string, stderr io.Writer) (grayOptions, error) {
	o := defaultGrayOptions()
	fs := flag.NewFlagSet("gray", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.clients, "clients", o.clients, "number of SDK clients, each a registered instance in the gray's cohort (1-1000)")
	fs.IntVar(&o.rounds, "rounds", o.rounds, "rounds, each one publish and one gray (1-1000)")
	fs.DurationVar(&o.roundTimeout, "round-timeout", o.roundTimeout, "how long one publish or gray waits for every client")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "bound on the whole run")
	fs.BoolVar(&o.json, "json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case o.clients < 1 || o.clients > 1000:
		return o, fmt.Errorf("--clients %d: want 1-1000", o.clients)
	case o.rounds < 1 || o.rounds > 1000:
		return o, fmt.Errorf("--rounds %d: want 1-1000", o.rounds)
	case o.roundTimeout <= 0 || o.timeout <= 0:
		return o, errors.New("--round-timeout and --timeout must be positive")
	}
	return o, nil
}

// grayResult is what a gray run measured: per round, the time from the
// start of the API call (POST …/revisions, or POST …/grays with a
// selector naming every client's instance) to the last client's OnChange
// callback with the new content.
type grayResult struct {
	Store        string          `json:"store"`
	Clients      int             `json:"clients"`
	Rounds       int             `json:"rounds"`
	Publish      []time.Duration `json:"publish_ns"`
	Gray         []time.Duration `json:"gray_ns"`
	PublishP50   time.Duration   `json:"publish_p50_ns"`
	GrayP50      time.Duration   `json:"gray_p50_ns"`
	Ratio        float64         `json:"gray_over_publish"`
	OpenDuration time.Duration   `json:"open_ns"`
}

func (r *grayResult) print(w io.Writer) {
	fmt.Fprintf(w, "store=%s clients=%d rounds=%d (publish and gray alternating, clients opened in %v)\n", r.Store, r.Clients, r.Rounds, r.OpenDuration.Round(time.Millisecond))
	fmt.Fprintf(w, "POST …/revisions → all clients applied: median %v\n", r.PublishP50.Round(time.Microsecond))
	fmt.Fprintf(w, "POST …/grays     → all cohort clients applied: median %v\n", r.GrayP50.Round(time.Microsecond))
	fmt.Fprintf(w, "gray ÷ publish: %.2f\n", r.Ratio)
}

const grayService = "bench-gray"

// grayBench serves the admin server over a temporary bbolt store, opens
// o.clients SDK clients over HTTP, each registering an instance, and runs
// o.rounds rounds; each round (in alternating order) publishes the file
// to main and creates a gray changing it for a selector naming every
// instance, waits until every client applied each, then abandons the gray
// and waits until every client is back on main.
func grayBench(ctx context.Context, o grayOptions, log *slog.Logger) (*grayResult, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "sluice-bench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	st, err := boltstore.Open(filepath.Join(dir, "sluice.db"), boltstore.Options{Logger: log})
	if err != nil {
		return nil, err
	}
	pub := configsvc.Validating(st, format.Validator{})
	defer pub.Close()
	url, token, hc, stop, err := serveAdmin(ctx, pub, o.clients+1, log)
	if err != nil {
		return nil, err
	}
	defer stop()
	ac, err := api.New(api.Config{Servers: []string{url}, Token: token, HTTPClient: hc})
	if err != nil {
		return nil, err
	}
	defer ac.Close()
	svc := configsvc.Service(grayService)
	if _, _, err := ac.Create(ctx, svc); err != nil {
		return nil, err
	}
	if _, err := ac.PutFile(ctx, svc, benchFile, []byte("main-0")); err != nil {
		return nil, err
	}

	// want is the content every client waits for; seen counts the clients
	// whose last callback delivered it.
	var want atomic.Pointer[string]
	var seen atomic.Int32
	ids := make([]string, o.clients)
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
	for i := range o.clients {
		ids[i] = "bench-" + strconv.Itoa(i)
		c, err := sdk.Open(ctx, sdk.Config{Service: grayService, Server: url, Token: token, HTTPClient: hc, Logger: log,
			Instance: sdk.Instance{ID: ids[i], Addr: "127.0.0.1:1"}})
		if err != nil {
			return nil, fmt.Errorf("opening client %d: %w", i, err)
		}
		clients[i] = c
		c.OnChange(benchFile, func(ch sdk.Change) {
			if w := want.Load(); w != nil && *w == string(ch.New) {
				seen.Add(1)
			}
		})
	}
	openDuration := time.Since(openStart)

	// apply runs call and returns the time from its start until every
	// client's last callback delivered content.
	apply := func(content string, call func() error) (time.Duration, error) {
		seen.Store(0)
		want.Store(&content)
		start := time.Now()
		if err := call(); err != nil {
			return 0, err
		}
		deadline := start.Add(o.roundTimeout)
		for int(seen.Load()) < o.clients {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return 0, fmt.Errorf("%d of %d clients applied %q within %v", seen.Load(), o.clients, content, o.roundTimeout)
			}
			time.Sleep(200 * time.Microsecond)
		}
		return time.Since(start), nil
	}

	res := &grayResult{Store: "bolt", Clients: o.clients, Rounds: o.rounds, OpenDuration: openDuration}
	mainContent := "main-0"
	for round := 1; round <= o.rounds; round++ {
		doPublish := func() error {
			mainContent = "main-" + strconv.Itoa(round)
			d, err := apply(mainContent, func() error {
				_, err := ac.Publish(ctx, svc, api.PublishRequest{Message: "round " + strconv.Itoa(round),
					Changes: []api.Change{api.PutChange(benchFile, []byte(mainContent))}})
				return err
			})
			res.Publish = append(res.Publish, d)
			return err
		}
		doGray := func() error {
			content := "gray-" + strconv.Itoa(round)
			var g configsvc.Gray
			d, err := apply(content, func() error {
				var err error
				g, err = ac.CreateGray(ctx, svc, api.GrayRequest{Name: "round " + strconv.Itoa(round),
					Changes: []api.Change{api.PutChange(benchFile, []byte(content))}, Selector: api.Selector{Instances: ids}})
				return err
			})
			if err != nil {
				return err
			}
			res.Gray = append(res.Gray, d)
			_, err = apply(mainContent, func() error { _, err := ac.AbandonGray(ctx, svc, g.ID); return err })
			return err
		}
		steps := []func() error{doPublish, doGray}
		if round%2 == 0 {
			steps[0], steps[1] = steps[1], steps[0]
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return nil, fmt.Errorf("round %d: %w", round, err)
			}
		}
	}
	res.PublishP50, res.GrayP50 = pct(res.Publish, 50), pct(res.Gray, 50)
	if res.PublishP50 > 0 {
		res.Ratio = float64(res.GrayP50) / float64(res.PublishP50)
	}
	return res, nil
}

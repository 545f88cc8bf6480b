package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// TestWatchBenchSmall runs the harness end to end with a few clients on each
// transport and checks that every publish reached every client.
func TestWatchBenchSmall(t *testing.T) {
	srv := zktest.Start(t)
	tests := []struct {
		name string
		o    func(o *watchOptions)
	}{
		{"zookeeper", func(o *watchOptions) { o.transport, o.zk = "zookeeper", srv.Addr() }},
		{"http over zookeeper", func(o *watchOptions) { o.transport, o.zk, o.zkRoot = "http", srv.Addr(), "/bench-http" }},
		{"http over bolt", func(o *watchOptions) { o.transport = "http" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := defaultWatchOptions()
			o.clients, o.publishes, o.pause, o.timeout = 5, 10, 0, time.Minute
			tt.o(&o)
			res, err := watchBench(context.Background(), o, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if res.Missing != 0 || res.Samples != 50 {
				t.Fatalf("samples %d, missing %d; want 50, 0", res.Samples, res.Missing)
			}
			if res.Max <= 0 || res.P50 > res.P99 || res.P99 > res.Max {
				t.Fatalf("inconsistent percentiles %+v", res)
			}
		})
	}
}

func TestWatchFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // substring of the error; "" = ok
	}{
		{"zookeeper needs --zk", []string{"watch"}, "--zk"},
		{"bad transport", []string{"watch", "--transport", "grpc"}, "transport"},
		{"too many clients", []string{"watch", "--transport", "http", "--clients", "100000"}, "clients"},
		{"no verb", []string{}, "usage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tt.args, &out, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%v) = %v, want error mentioning %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	d := []time.Duration{5, 1, 4, 2, 3, 6, 7, 8, 9, 10}
	if got := pct(d, 50); got != 5 {
		t.Fatalf("p50 = %v, want 5", got)
	}
	if got := pct(d, 99); got != 10 {
		t.Fatalf("p99 = %v, want 10", got)
	}
	if got := pct(d, 100); got != 10 {
		t.Fatalf("max = %v, want 10", got)
	}
	if got := pct(nil, 50); got != 0 {
		t.Fatalf("empty p50 = %v", got)
	}
}

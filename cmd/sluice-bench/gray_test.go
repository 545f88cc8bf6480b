package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestGrayBenchSmall runs `sluice-bench gray` with a few clients and
// rounds: every round measured both a publish and a gray reaching every
// client, and the printed ratio is the medians'.
func TestGrayBenchSmall(t *testing.T) {
	o := defaultGrayOptions()
	o.clients, o.rounds, o.timeout = 3, 3, time.Minute
	res, err := grayBench(context.Background(), o, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Publish) != 3 || len(res.Gray) != 3 || res.Clients != 3 {
		t.Fatalf("result %+v; want 3 publishes and 3 grays over 3 clients", res)
	}
	for i := range 3 {
		if res.Publish[i] <= 0 || res.Gray[i] <= 0 {
			t.Fatalf("round %d: publish %v, gray %v", i+1, res.Publish[i], res.Gray[i])
		}
	}
	if want := float64(res.GrayP50) / float64(res.PublishP50); res.Ratio != want {
		t.Fatalf("ratio %v, want %v", res.Ratio, want)
	}

	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"gray", "--clients", "2", "--rounds", "1", "--json"}, &out, &errOut); err != nil {
		t.Fatalf("sluice-bench gray: %v\n%s", err, errOut.String())
	}
	var got grayResult
	if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Clients != 2 || len(got.Gray) != 1 {
		t.Fatalf("JSON output %s (%v)", out.String(), err)
	}
	if err := run(context.Background(), []string{"gray", "--clients", "0"}, io.Discard, io.Discard); err == nil {
		t.Fatal("--clients 0 accepted")
	}
}

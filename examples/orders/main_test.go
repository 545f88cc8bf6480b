package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/httpapi"
	"github.com/sluicehq/sluice/configsvc/testkit"
)

// TestOrdersService runs the example against a real admin server: it
// registers, serves its config value live, answers /whoami, passes the pin
// to its downstream, and deregisters on shutdown.
func TestOrdersService(t *testing.T) {
	ctx := context.Background()
	st := bolttest.MustOpen(t, boltstore.Options{})
	api, err := httpapi.New(httpapi.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	token, err := api.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(api)
	t.Cleanup(func() { api.Close(); ts.Close() })
	svc := configsvc.Service("orders")
	if err := st.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	publish := func(content string) {
		t.Helper()
		h, err := st.Head(ctx, svc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Publish(ctx, svc, configsvc.Changeset{Base: h.Revision, Changes: []configsvc.Change{{File: "orders.yaml", Content: []byte(content)}}}); err != nil {
			t.Fatal(err)
		}
	}
	publish("greeting: hello\nmax_items: 3\n")

	pins := make(chan string, 1)
	downstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pins <- r.Header.Get("X-Sluice-Pin")
		io.WriteString(w, "paid")
	}))
	t.Cleanup(downstream.Close)

	o, err := parseFlags([]string{"--server", ts.URL, "--id", "orders-7", "--downstream", downstream.URL}, func(string) string { return token })
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(runCtx, o, ln, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()
	get := func(path, pin string) string {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if pin != "" {
			req.Header.Set("X-Sluice-Pin", pin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	testkit.EventuallyTrue(t, 5*time.Second, "serving", func() bool {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	if got := get("/greeting", ""); got != "hello" {
		t.Fatalf("/greeting = %q", got)
	}
	if got := get("/whoami", ""); got != "orders-7" {
		t.Fatalf("/whoami = %q", got)
	}
	publish("greeting: bonjour\nmax_items: 3\n")
	testkit.EventuallyTrue(t, 5*time.Second, "live config change", func() bool { return get("/greeting", "") == "bonjour" })
	publish("greeting: ''\nmax_items: 3\n") // refused by Validate: the old value stays
	testkit.EventuallyTrue(t, 5*time.Second, "rejection visible", func() bool { return strings.Contains(get("/config", ""), "greeting must not be empty") })
	if got := get("/greeting", ""); got != "bonjour" {
		t.Fatalf("/greeting after a bad publish = %q, want the old value", got)
	}
	if got := get("/checkout", "pin-abc"); got != "paid" {
		t.Fatalf("/checkout = %q", got)
	}
	if pin := <-pins; pin != "pin-abc" {
		t.Fatalf("downstream got pin %q, want pin-abc", pin)
	}
	testkit.EventuallyTrue(t, 5*time.Second, "registered", func() bool {
		list, err := st.Instances(ctx, "orders")
		return err == nil && len(list) == 1 && list[0].ID == "orders-7" && list[0].Addr == ln.Addr().String()
	})
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	done <- nil
	testkit.EventuallyTrue(t, 5*time.Second, "deregistered on shutdown", func() bool {
		list, err := st.Instances(ctx, "orders")
		return err == nil && len(list) == 0
	})
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"zk", []string{"--zk", "127.0.0.1:2181"}, true},
		{"server", []string{"--server", "http://127.0.0.1:7070"}, true},
		{"neither", nil, false},
		{"both", []string{"--zk", "a:1", "--server", "http://b"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, func(string) string { return "" })
			if (err == nil) != tt.ok {
				t.Fatalf("parseFlags(%v) = %v, want ok=%v", tt.args, err, tt.ok)
			}
		})
	}
}

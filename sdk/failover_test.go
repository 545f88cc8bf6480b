package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/sdk"
)

// TestServersFailOver runs two real admin servers on one store. The client
// lists both; the first is shut down mid-watch, and every revision published
// before, during and after is applied once, in order, via the second.
func TestServersFailOver(t *testing.T) {
	e := mustBolt(t)
	ctx := context.Background()
	srvA, tsA := startAPIServer(t, e.pub)
	_, tsB := startAPIServer(t, e.pub)
	token, err := srvA.Bootstrap(ctx)
	if err != nil || token == "" {
		t.Fatalf("bootstrap: %q, %v", token, err)
	}

	ref := configsvc.Service("orders")
	mustCreate(t, e.pub, ref)
	mustPublish(t, e.pub, ref, map[string]string{"n.txt": "1"})

	cfg := e.config(t, "orders", "")
	cfg.Store = nil
	cfg.Servers, cfg.Token = []string{tsA.URL, tsB.URL}, token
	c := mustOpen(t, cfg)
	var log changeLog
	c.OnChange("n.txt", log.add)

	for i := 2; i <= 4; i++ {
		mustPublish(t, e.pub, ref, map[string]string{"n.txt": fmt.Sprint(i)})
	}
	testkit.EventuallyTrue(t, 5*time.Second, "revisions 2-4 via server A", func() bool { return c.Revision() == 4 })

	// Server A goes away: its streams are cut and it accepts no more.
	srvA.Close()
	tsA.CloseClientConnections()
	tsA.Close()
	for i := 5; i <= 9; i++ {
		mustPublish(t, e.pub, ref, map[string]string{"n.txt": fmt.Sprint(i)})
	}
	testkit.EventuallyTrue(t, 10*time.Second, "revisions 5-9 via server B", func() bool { return c.Revision() == 9 })

	if got, want := log.revisions(), []int64{2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(got, want) {
		t.Fatalf("callbacks saw revisions %v, want %v", got, want)
	}
	if b, ok := c.File("n.txt"); !ok || string(b) != "9" {
		t.Fatalf("n.txt = %q, %v; want 9", b, ok)
	}
}

func TestServersConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  sdk.Config
	}{
		{"bad url in Servers", sdk.Config{Service: "orders", Servers: []string{"http://127.0.0.1:1", "127.0.0.1:2"}}},
		{"Servers and ZooKeeper", sdk.Config{Service: "orders", Servers: []string{"http://127.0.0.1:1"}, ZooKeeper: []string{"127.0.0.1:2181"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := sdk.Open(ctx, tt.cfg)
			if err == nil {
				c.Close()
				t.Fatal("Open succeeded; want a config error")
			}
			if !errors.Is(err, configsvc.ErrInvalid) {
				t.Fatalf("err = %v; want ErrInvalid", err)
			}
		})
	}
}

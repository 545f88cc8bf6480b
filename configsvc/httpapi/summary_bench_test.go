package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// BenchmarkSummary measures the Services page's one request with 1,000
// services on bbolt, over loopback HTTP, once the summary index is loaded:
// a page of 100, of 500, the last page through a cursor, and limit=1,
// whose cost is mostly the total (every service authorized, counted,
// filtered and sorted).
func BenchmarkSummary(b *testing.B) {
	e, _ := thousandServices(b)
	client := e.http.Client()
	base := e.http.URL + "/v1/summary/services"
	var first api.ServiceSummaryList
	hr, err := http.NewRequest("GET", base+"?limit=450", nil)
	if err != nil {
		b.Fatal(err)
	}
	hr.Header.Set("Authorization", "Bearer "+e.admin)
	r, err := client.Do(hr)
	if err != nil {
		b.Fatal(err)
	}
	if err := json.NewDecoder(r.Body).Decode(&first); err != nil || first.Next == "" {
		b.Fatalf("first page: %v, next %q", err, first.Next)
	}
	r.Body.Close()
	for _, q := range []string{"?limit=100", "?limit=500&sort=-updated", "?limit=100&cursor=" + first.Next, "?limit=1", "?limit=100&q=svc-09&rejected=false"} {
		b.Run(q, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sendOK(b, client, "GET", base+q, e.admin, nil)
			}
		})
	}
}

// BenchmarkSummaryIndexLoad measures what the first summary request after
// a server starts waits for: listing 1,000 services and reading each head
// and instance list, on bbolt and (when it runs) on ZooKeeper.
func BenchmarkSummaryIndexLoad(b *testing.B) {
	load := func(b *testing.B, st configsvc.Store) {
		for b.Loop() {
			x := newSummaryIndex(st, slog.New(slog.DiscardHandler))
			views, err := x.views(context.Background(), configsvc.KindService)
			x.close()
			if err != nil || len(views) != 1000 {
				b.Fatalf("%d views, %v", len(views), err)
			}
		}
	}
	b.Run("bolt", func(b *testing.B) {
		e, _ := thousandServices(b)
		load(b, e.store)
	})
	b.Run("zookeeper", func(b *testing.B) {
		zk := zktest.Start(b)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		st, err := zkstore.Open(ctx, zkstore.Config{Servers: []string{zk.Addr()}, Root: "/sluice-bench", OpTimeout: 5 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		for i := range 1000 {
			name := fmt.Sprintf("svc-%04d", i)
			seed(b, st, configsvc.Service(name), map[string]string{"app.yaml": "name: " + name + "\n"})
		}
		load(b, st)
	})
}

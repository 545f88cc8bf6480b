package sdk_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/sdk"
)

// exampleStore opens a throwaway bbolt store holding service "orders" at
// revision 1 with db.yaml and features.json. Real services point the SDK at
// ZooKeeper or at the admin server instead.
func exampleStore() (configsvc.Store, func()) {
	dir, err := os.MkdirTemp("", "sluice-example")
	if err != nil {
		log.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(dir, "sluice.db"), boltstore.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := st.Create(ctx, configsvc.Service("orders")); err != nil {
		log.Fatal(err)
	}
	_, err = st.Publish(ctx, configsvc.Service("orders"), configsvc.Changeset{Author: "ann", Message: "first", Changes: []configsvc.Change{
		{File: "db.yaml", Content: []byte("host: db1\nport: 5432\n")},
		{File: "features.json", Content: []byte(`{"beta":false}`)},
	}})
	if err != nil {
		log.Fatal(err)
	}
	return st, func() { st.Close(); os.RemoveAll(dir) }
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Bind a file to a type; Load is the hot-path read.
func Example() {
	st, cleanup := exampleStore()
	defer cleanup()

	c, err := sdk.Open(context.Background(), sdk.Config{
		Service:  "orders",
		Store:    st, // or ZooKeeper: []string{"127.0.0.1:2181"}, or Server: "http://127.0.0.1:7070"
		Instance: sdk.Instance{ID: "orders-1", Addr: "127.0.0.1:9001"},
		Logger:   quiet(),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	db := sdk.Bind[DBConfig](c, "db.yaml")
	cfg := db.Load()
	fmt.Println(cfg.Host, cfg.Port, db.Err(), c.Revision())
	// Output: db1 5432 <nil> 1
}

// A publish that fails the type's Validate method is rejected: the last
// good value stays and Err says why.
func ExampleBind_rejected() {
	st, cleanup := exampleStore()
	defer cleanup()
	c, err := sdk.Open(context.Background(), sdk.Config{Service: "orders", Store: st, NoRegister: true, Logger: quiet()})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	db := sdk.Bind[DBConfig](c, "db.yaml")

	applied := make(chan struct{})
	c.OnChange("features.json", func(sdk.Change) { close(applied) })
	_, err = st.Publish(context.Background(), configsvc.Service("orders"), configsvc.Changeset{Base: 1, Changes: []configsvc.Change{
		{File: "db.yaml", Content: []byte("host: db2\nport: 0\n")}, // Validate refuses port 0
		{File: "features.json", Content: []byte(`{"beta":true}`)},
	}})
	if err != nil {
		log.Fatal(err)
	}
	<-applied // the good file of the same revision was applied
	fmt.Println(db.Load().Port)
	fmt.Println(db.Err())
	// Output:
	// 5432
	// sdk: db.yaml at revision 2: validate: port 0 outside 1-65535
}

// OnChange callbacks run after the new state is visible and cached.
func ExampleClient_OnChange() {
	st, cleanup := exampleStore()
	defer cleanup()
	c, err := sdk.Open(context.Background(), sdk.Config{Service: "orders", Store: st, NoRegister: true, Logger: quiet()})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	done := make(chan struct{})
	stop := c.OnChange("features.json", func(ch sdk.Change) {
		fmt.Printf("%s at revision %d: %s -> %s\n", ch.File, ch.Revision, ch.Old, ch.New)
		close(done)
	})
	defer stop()
	_, err = st.Publish(context.Background(), configsvc.Service("orders"), configsvc.Changeset{Base: 1, Changes: []configsvc.Change{
		{File: "features.json", Content: []byte(`{"beta":true}`)},
	}})
	if err != nil {
		log.Fatal(err)
	}
	<-done
	// Output: features.json at revision 2: {"beta":false} -> {"beta":true}
}

// PinMiddleware and PinTransport pass a debugging pin from the incoming
// request to the calls a handler makes downstream.
func ExamplePinMiddleware() {
	downstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("downstream got pin:", r.Header.Get("X-Sluice-Pin"))
	}))
	defer downstream.Close()
	client := &http.Client{Transport: sdk.PinTransport(nil)}

	handler := sdk.PinMiddleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, downstream.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
	}))
	in := httptest.NewRequest(http.MethodGet, "/orders/42", nil)
	in.Header.Set("X-Sluice-Pin", "pin-token-from-sluice")
	handler.ServeHTTP(httptest.NewRecorder(), in)
	// Output: downstream got pin: pin-token-from-sluice
}

// PinTransport sends the pin only to the hosts it allows: by default
// cluster-internal names and private addresses, so that a client shared
// with calls to third parties does not leak the pin to them. Name the hosts
// that may get it, here the default set plus the company's own domain.
func ExamplePinTransport() {
	seen := func(r *http.Request) string { return r.URL.Host + " pin=" + r.Header.Get(sdk.PinHeader) }
	client := &http.Client{Transport: sdk.PinTransport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		fmt.Println(seen(r))
		return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: r}, nil
	}), sdk.PinHostsInternal, "*.shop.example")}

	ctx := sdk.WithPin(context.Background(), "pin-token")
	for _, url := range []string{"http://payments:8080/charge", "https://api.shop.example/v1", "https://api.stripe.com/v1/charges"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	// Output:
	// payments:8080 pin=pin-token
	// api.shop.example pin=pin-token
	// api.stripe.com pin=
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A gray release reaches the instances its selector matches: this one,
// by its label, applies main + the gray (the gray's db.yaml wins) and
// reports it applied; Change.Gray names the gray.
func ExampleClient_Grays() {
	st, cleanup := exampleStore()
	defer cleanup()
	ctx := context.Background()
	c, err := sdk.Open(ctx, sdk.Config{Service: "orders", Store: st, Logger: quiet(),
		Instance: sdk.Instance{ID: "orders-1", Labels: map[string]string{"zone": "b"}}})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	changed := make(chan sdk.Change, 1)
	c.OnChange("db.yaml", func(ch sdk.Change) { changed <- ch })

	g, err := st.CreateGray(ctx, configsvc.Service("orders"), configsvc.Gray{BaseRevision: 1,
		Changes:  []configsvc.Change{{File: "db.yaml", Content: []byte("host: db2\nport: 5432\n")}},
		Selector: configsvc.Selector{Labels: []map[string]string{{"zone": "b"}}}})
	if err != nil {
		log.Fatal(err)
	}
	ch := <-changed
	fmt.Println(ch.Gray == g.ID, string(ch.New) == "host: db2\nport: 5432\n", c.Revision(), len(c.Grays()))
	// Output: true true 1 1
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sluicehq/sluice/sdk"
)

// OrdersConfig is the content of orders.yaml.
type OrdersConfig struct {
	Greeting string `yaml:"greeting" json:"greeting"`
	MaxItems int    `yaml:"max_items" json:"max_items"`
}

// Validate refuses configs the service cannot run with; the SDK then keeps
// the previous value and reports the rejection on the instance.
func (c *OrdersConfig) Validate() error {
	if c.Greeting == "" {
		return errors.New("greeting must not be empty")
	}
	if c.MaxItems < 1 {
		return fmt.Errorf("max_items %d must be at least 1", c.MaxItems)
	}
	return nil
}

// options are the command-line flags.
type options struct {
	addr, id, service  string
	zk, zkRoot, server string
	zkDigest           string // SLUICE_ZK_DIGEST: the reader identity when the tree has digest ACLs
	zkInstanceDigest   string // SLUICE_ZK_INSTANCE_DIGEST: this service's own identity (per-service mode)
	token, cacheDir    string
	downstream         string
	shutdownTimeout    time.Duration
}

func parseFlags(args []string, getenv func(string) string) (options, error) {
	var o options
	fs := flag.NewFlagSet("orders", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:9001", "address to serve on")
	fs.StringVar(&o.id, "id", "orders-1", "instance id registered with Sluice")
	fs.StringVar(&o.service, "service", "orders", "Sluice service whose config to read")
	fs.StringVar(&o.zk, "zk", "", "ZooKeeper servers, comma-separated (host:port,…)")
	fs.StringVar(&o.zkRoot, "zk-root", "/sluice", "Sluice's root node in ZooKeeper")
	fs.StringVar(&o.server, "server", "", "Sluice admin server URLs, comma-separated for fail-over (instead of --zk)")
	fs.StringVar(&o.token, "token", getenv("SLUICE_TOKEN"), "API token for --server (default $SLUICE_TOKEN)")
	fs.StringVar(&o.cacheDir, "cache-dir", "", "directory of the local config cache (default: none)")
	fs.StringVar(&o.downstream, "downstream", "", "URL that /checkout calls, passing the pin on")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 5*time.Second, "graceful shutdown bound")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.zkDigest = getenv("SLUICE_ZK_DIGEST")
	o.zkInstanceDigest = getenv("SLUICE_ZK_INSTANCE_DIGEST")
	if (o.zk == "") == (o.server == "") {
		return o, errors.New("set exactly one of --zk or --server")
	}
	return o, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o, err := parseFlags(os.Args[1:], os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(1)
	}
	if err := run(ctx, o, ln, log); err != nil {
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(1)
	}
}

// run serves on ln until ctx ends.
func run(ctx context.Context, o options, ln net.Listener, log *slog.Logger) error {
	cfg := sdk.Config{
		Service:  o.service,
		Servers:  splitList(o.server),
		Token:    o.token,
		ZKRoot:   o.zkRoot,
		ZKDigest: o.zkDigest,
		CacheDir: o.cacheDir,
		Instance: sdk.Instance{ID: o.id, Addr: ln.Addr().String()},
		Logger:   log,

		ZKInstanceDigest: o.zkInstanceDigest,
	}
	if o.zk != "" {
		cfg.ZooKeeper = splitList(o.zk)
	}
	c, err := sdk.Open(ctx, cfg)
	if err != nil {
		ln.Close()
		return err
	}
	defer c.Close()
	conf := sdk.Bind[OrdersConfig](c, "orders.yaml")
	if err := conf.Err(); err != nil {
		log.Error("orders.yaml has no valid value yet", "err", err)
	}

	srv := &http.Server{Handler: sdk.PinMiddleware(newHandler(o, c, conf)), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("orders serving", "addr", ln.Addr().String(), "instance", o.id, "revision", c.Revision(), "from_cache", c.FromCache())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	<-errc
	return nil
}

func newHandler(o options, c *sdk.Client, conf *sdk.Binding[OrdersConfig]) http.Handler {
	downstream := &http.Client{Transport: sdk.PinTransport(nil), Timeout: 5 * time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /greeting", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, conf.Load().Greeting)
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, o.id)
	})
	mux.HandleFunc("GET /config", func(w http.ResponseWriter, r *http.Request) {
		body := struct {
			Config    OrdersConfig `json:"config"`
			Revision  int64        `json:"revision"`
			FromCache bool         `json:"from_cache"`
			Rejected  string       `json:"rejected,omitempty"`
		}{Config: conf.Load(), Revision: c.Revision(), FromCache: c.FromCache()}
		if err := conf.Err(); err != nil {
			body.Rejected = err.Error()
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(body)
	})
	mux.HandleFunc("GET /checkout", func(w http.ResponseWriter, r *http.Request) {
		if o.downstream == "" {
			http.Error(w, "no --downstream configured", http.StatusNotFound)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, o.downstream, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := downstream.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, io.LimitReader(resp.Body, 1<<20))
	})
	return mux
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

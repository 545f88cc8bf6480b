package zkstore_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/zkstore"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		servers []string
		root    string
		wantErr bool
	}{
		{name: "ensemble with chroot", url: "zk://h1:2181,h2:2181,h3:2181/sluice", servers: []string{"h1:2181", "h2:2181", "h3:2181"}, root: "/sluice"},
		{name: "no path uses default root", url: "zk://127.0.0.1:2181", servers: []string{"127.0.0.1:2181"}, root: "/sluice"},
		{name: "trailing slash", url: "zk://h1:2181/", servers: []string{"h1:2181"}, root: "/sluice"},
		{name: "nested chroot", url: "zk://h1/apps/sluice", servers: []string{"h1"}, root: "/apps/sluice"},
		{name: "wrong scheme", url: "bolt://x.db", wantErr: true},
		{name: "no host", url: "zk:///sluice", wantErr: true},
		{name: "query refused", url: "zk://h1:2181/sluice?x=1", wantErr: true},
		{name: "user refused", url: "zk://u:p@h1:2181/sluice", wantErr: true},
		{name: "unclean root", url: "zk://h1:2181/a//b", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := zkstore.ParseURL(tt.url)
			if tt.wantErr {
				if !errors.Is(err, configsvc.ErrInvalid) {
					t.Fatalf("ParseURL(%q) error = %v, want ErrInvalid", tt.url, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.url, err)
			}
			if !slices.Equal(cfg.Servers, tt.servers) || cfg.Root != tt.root {
				t.Fatalf("ParseURL(%q) = %v %q, want %v %q", tt.url, cfg.Servers, cfg.Root, tt.servers, tt.root)
			}
		})
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  zkstore.Config
	}{
		{name: "no servers", cfg: zkstore.Config{}},
		{name: "relative root", cfg: zkstore.Config{Servers: []string{"127.0.0.1:1"}, Root: "sluice"}},
		{name: "digest without password", cfg: zkstore.Config{Servers: []string{"127.0.0.1:1"}, Digest: "writer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := zkstore.Open(context.Background(), tt.cfg)
			if !errors.Is(err, configsvc.ErrInvalid) {
				t.Fatalf("Open error = %v, want ErrInvalid", err)
			}
		})
	}
}

// TestOpenUnreachable: with nothing listening, Open gives up with
// ErrUnavailable at its OpTimeout instead of waiting for ZooKeeper.
func TestOpenUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	start := time.Now()
	_, err = zkstore.Open(context.Background(), zkstore.Config{Servers: []string{addr}, OpTimeout: 700 * time.Millisecond})
	elapsed := time.Since(start)
	if !errors.Is(err, configsvc.ErrUnavailable) {
		t.Fatalf("Open error = %v, want ErrUnavailable", err)
	}
	if elapsed > 3*time.Second {
		t.Fatalf("Open took %v with OpTimeout 700ms", elapsed)
	}
}

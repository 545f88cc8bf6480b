package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/testkit"
)

func TestProxyCommandServesAndStops(t *testing.T) {
	addr, metricsAddr := testkit.FreeAddr(t), testkit.FreeAddr(t)
	var stdout, stderr srvOutput
	env := Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"proxy", "--addr", addr, "--metrics-addr", metricsAddr, "--store", "bolt://" + filepath.Join(t.TempDir(), "s.db")}, env)
	}()
	client := &http.Client{Transport: &http.Transport{}, Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	var resp *http.Response
	testkit.Eventually(t, 5*time.Second, "the proxy answering", func() error {
		var err error
		if resp, err = client.Get("http://" + addr + "/anything"); err != nil {
			return fmt.Errorf("%w\nstderr: %s", err, stderr.String())
		}
		return nil
	})
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `"not_found"`) {
		t.Errorf("with no routes: %d %s, want 404 not_found", resp.StatusCode, body)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := client.Get("http://" + metricsAddr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		if path == "/metrics" && !strings.Contains(string(b), "sluice_proxy_requests_total") {
			t.Errorf("/metrics lacks the proxy's metrics")
		}
	}
	cancel()
	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit code %d; stderr: %s", c, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sluice proxy did not stop on cancel")
	}
	if !strings.Contains(stdout.String(), `"status":404`) {
		t.Errorf("access log on stdout lacks the request: %q", stdout.String())
	}
}

func TestProxyCommandRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"store scheme", []string{"proxy", "--store", "etcd://x"}, "bolt:// or zk://"},
		{"trusted proxies", []string{"proxy", "--trusted-proxies", "10.0.0.0/8,nonsense"}, `"nonsense"`},
		{"log level", []string{"proxy", "--log-level", "loud"}, "--log-level"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			env := Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr, Getenv: func(string) string { return "" }}
			if code := run(context.Background(), tc.args, env); code == 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want failure mentioning %q", code, stderr.String(), tc.want)
			}
		})
	}
}

// TestProxyCommandServesTLS: --tls-cert and --tls-key make sluice proxy
// serve HTTPS, on either engine; one without the other is refused, and so
// is an unknown engine.
func TestProxyCommandServesTLS(t *testing.T) {
	for _, engine := range []string{"fast", "std", "loop"} {
		t.Run(engine, func(t *testing.T) {
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
			cert := testkit.WriteCert(t, certFile, keyFile, "proxy")
			addr := testkit.FreeAddr(t)
			var stderr srvOutput
			env := Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr, Getenv: func(string) string { return "" }}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			code := make(chan int, 1)
			go func() {
				code <- run(ctx, []string{"proxy", "--addr", addr, "--engine", engine, "--tls-cert", certFile, "--tls-key", keyFile,
					"--access-log", "off", "--store", "bolt://" + filepath.Join(dir, "s.db")}, env)
			}()
			pool := x509.NewCertPool()
			pool.AddCert(cert)
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
			testkit.Eventually(t, 5*time.Second, "the proxy answering HTTPS", func() error {
				resp, err := client.Get("https://" + addr + "/anything")
				if err != nil {
					return fmt.Errorf("%w\nstderr: %s", err, stderr.String())
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound {
					return fmt.Errorf("status %d, want 404 (no routes)", resp.StatusCode)
				}
				return nil
			})
			cancel()
			select {
			case c := <-code:
				if c != 0 {
					t.Fatalf("exit code %d; stderr: %s", c, stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("sluice proxy did not stop on cancel")
			}
		})
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown engine", []string{"--engine", "turbo"}, `"turbo"`},
		{"certificate without key", []string{"--tls-cert", "c.pem"}, "--tls-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			env := Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: &stderr, Getenv: func(string) string { return "" }}
			args := append([]string{"proxy", "--addr", testkit.FreeAddr(t), "--store", "bolt://" + filepath.Join(t.TempDir(), "s.db")}, tc.args...)
			if code := run(context.Background(), args, env); code == 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want failure mentioning %q", code, stderr.String(), tc.want)
			}
		})
	}
}

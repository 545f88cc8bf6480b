package proxyserver_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/router/proxyserver"
)

// TestServeTLS: with a certificate, the proxy serves HTTPS: HTTP/1.1
// clients and HTTP/2 clients (ALPN h2) alike, on both engines; replacing
// the certificate files makes new handshakes present the new certificate
// without a restart.
func TestServeTLS(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		dir := t.TempDir()
		certFile, keyFile := filepath.Join(dir, "proxy.crt"), filepath.Join(dir, "proxy.key")
		first := testkit.WriteCert(t, certFile, keyFile, "first")
		up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.Header.Get("X-Forwarded-Proto"))
		})
		addr, _ := servedProxy(t, "routes:\n  - name: up\n    upstream: {static: [\""+up+"\"]}\n",
			proxyserver.Options{TLSCertFile: certFile, TLSKeyFile: keyFile})

		// client trusts only cert; h2 chooses whether it offers HTTP/2.
		client := func(cert *x509.Certificate, h2 bool) *http.Client {
			pool := x509.NewCertPool()
			pool.AddCert(cert)
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2, DisableKeepAlives: true}
			if !h2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // HTTP/1.1 only
			}
			t.Cleanup(tr.CloseIdleConnections)
			return &http.Client{Transport: tr, Timeout: 5 * time.Second}
		}
		get := func(c *http.Client) (*http.Response, string, error) {
			resp, err := c.Get("https://" + addr + "/")
			if err != nil {
				return nil, "", err
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			return resp, string(b), err
		}
		testkit.EventuallyTrue(t, 5*time.Second, "the TLS proxy routes", func() bool {
			resp, _, err := get(client(first, false))
			return err == nil && resp.StatusCode == 200
		})
		for _, h2 := range []bool{false, true} {
			resp, body, err := get(client(first, h2))
			if err != nil {
				t.Fatalf("h2=%t: %v", h2, err)
			}
			wantProto := map[bool]int{false: 1, true: 2}[h2]
			if resp.ProtoMajor != wantProto || resp.StatusCode != 200 || body != "https" {
				t.Fatalf("h2=%t: %s %d %q, want HTTP/%d 200 \"https\" (X-Forwarded-Proto)", h2, resp.Proto, resp.StatusCode, body, wantProto)
			}
		}

		second := testkit.WriteCert(t, certFile, keyFile, "second")
		testkit.EventuallyTrue(t, 5*time.Second, "new handshakes present the new certificate", func() bool {
			resp, _, err := get(client(second, true))
			return err == nil && resp.TLS.PeerCertificates[0].Subject.CommonName == "second"
		})
		if _, _, err := get(client(first, false)); err == nil {
			t.Fatal("a client trusting only the old certificate still connects")
		}
	})
}

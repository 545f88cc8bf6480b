package sdk_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/sdk"
)

func TestPinNamesMatchRouter(t *testing.T) {
	if sdk.PinHeader != router.PinHeader || sdk.PinCookie != router.PinCookie {
		t.Fatalf("sdk pin names %q/%q differ from router's %q/%q", sdk.PinHeader, sdk.PinCookie, router.PinHeader, router.PinCookie)
	}
}

// TestPinPropagation sends a request through PinMiddleware to a handler that
// calls a downstream with a PinTransport client, and checks what the
// downstream received.
func TestPinPropagation(t *testing.T) {
	tests := []struct {
		name     string
		header   string
		cookie   string
		outgoing string // a pin header the handler sets itself on the outgoing request
		want     string
	}{
		{name: "header", header: "pin-a", want: "pin-a"},
		{name: "cookie", cookie: "pin-b", want: "pin-b"},
		{name: "header wins over cookie", header: "pin-a", cookie: "pin-b", want: "pin-a"},
		{name: "none", want: ""},
		{name: "explicit outgoing header kept", header: "pin-a", outgoing: "pin-c", want: "pin-c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan string, 1)
			downstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got <- r.Header.Get(sdk.PinHeader)
			}))
			t.Cleanup(downstream.Close)
			client := &http.Client{Transport: sdk.PinTransport(nil)}
			t.Cleanup(client.CloseIdleConnections)

			h := sdk.PinMiddleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, downstream.URL, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if tt.outgoing != "" {
					req.Header.Set(sdk.PinHeader, tt.outgoing)
				}
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if h := req.Header.Get(sdk.PinHeader); h != tt.outgoing {
					t.Errorf("caller's request was modified: pin header %q", h)
				}
			}))
			in := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.header != "" {
				in.Header.Set(sdk.PinHeader, tt.header)
			}
			if tt.cookie != "" {
				in.AddCookie(&http.Cookie{Name: sdk.PinCookie, Value: tt.cookie})
			}
			h.ServeHTTP(httptest.NewRecorder(), in)
			if g := <-got; g != tt.want {
				t.Fatalf("downstream got pin %q, want %q", g, tt.want)
			}
		})
	}
}

func TestPinFromContext(t *testing.T) {
	if _, ok := sdk.PinFromContext(context.Background()); ok {
		t.Fatal("empty context reports a pin")
	}
	if _, ok := sdk.PinFromContext(sdk.WithPin(context.Background(), "")); ok {
		t.Fatal("empty token reported as a pin")
	}
	if tok, ok := sdk.PinFromContext(sdk.WithPin(context.Background(), "p1")); !ok || tok != "p1" {
		t.Fatalf("PinFromContext = %q, %v; want p1, true", tok, ok)
	}
}

// recordingTransport records the pin header of each request it is given,
// by host, and answers 204 without a network.
type recordingTransport struct{ got map[string]string }

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.got[r.URL.Host] = r.Header.Get(sdk.PinHeader)
	return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: r}, nil
}

// TestAttackPinLeaksToThirdParty: a service that calls third parties with
// the same client must not hand them its callers' pins (a pin steers
// requests through the proxy for as long as it lives). By default the pin
// goes to cluster-internal names and private addresses only; an allow list
// replaces that.
func TestAttackPinLeaksToThirdParty(t *testing.T) {
	hosts := []string{
		"payments", "payments:8080", "localhost:9001", "payments.shop.svc.cluster.local", "orders.internal", "db.home.arpa",
		"10.1.2.3:80", "192.168.0.7", "172.20.0.1", "127.0.0.1:7080", "[::1]:80", "[fd12::1]:80",
		"api.stripe.com", "evil.example.com", "PAYMENTS.EXAMPLE.COM.", "8.8.8.8", "[2001:db8::1]:443", "169.254.169.254", "100.64.0.1",
	}
	send := func(t *testing.T, tr http.RoundTripper) {
		t.Helper()
		ctx := sdk.WithPin(context.Background(), "slp_pin")
		for _, h := range hosts {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h+"/x", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	for _, tc := range []struct {
		name  string
		allow []string
		with  map[string]bool // hosts that get the pin
	}{
		{"default", nil, map[string]bool{
			"payments": true, "payments:8080": true, "localhost:9001": true, "payments.shop.svc.cluster.local": true, "orders.internal": true,
			"db.home.arpa": true, "10.1.2.3:80": true, "192.168.0.7": true, "172.20.0.1": true, "127.0.0.1:7080": true, "[::1]:80": true, "[fd12::1]:80": true,
		}},
		{"allow list", []string{"*.example.com", "8.8.8.0/24", "payments"}, map[string]bool{
			"payments": true, "payments:8080": true, "evil.example.com": true, "PAYMENTS.EXAMPLE.COM.": true, "8.8.8.8": true,
		}},
		{"internal and more", []string{sdk.PinHostsInternal, "api.stripe.com"}, map[string]bool{
			"payments": true, "payments:8080": true, "localhost:9001": true, "payments.shop.svc.cluster.local": true, "orders.internal": true,
			"db.home.arpa": true, "10.1.2.3:80": true, "192.168.0.7": true, "172.20.0.1": true, "127.0.0.1:7080": true, "[::1]:80": true, "[fd12::1]:80": true,
			"api.stripe.com": true,
		}},
		{"everyone", []string{"*"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingTransport{got: map[string]string{}}
			send(t, sdk.PinTransport(rec, tc.allow...))
			for _, h := range hosts {
				want := tc.with[h] || tc.with == nil
				if got := rec.got[h] == "slp_pin"; got != want {
					t.Errorf("host %s got the pin: %v, want %v", h, got, want)
				}
			}
		})
	}
}

func TestPinTransportRefusesBadPatterns(t *testing.T) {
	for _, p := range []string{"", "10.0.0.0/33", "*.", "a*b", "host:80", "*.a/b"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("PinTransport(nil, %q) did not panic", p)
				}
			}()
			sdk.PinTransport(nil, p)
		}()
	}
}

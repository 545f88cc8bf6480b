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

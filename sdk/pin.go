package sdk

import (
	"context"
	"net/http"
)

// PinHeader and PinCookie carry a debugging pin token; they equal
// router.PinHeader and router.PinCookie (checked by a test), repeated here so
// services importing the SDK do not link the proxy.
const (
	PinHeader = "X-Sluice-Pin"
	PinCookie = "sluice_pin"
)

type pinKey struct{}

// WithPin returns a copy of ctx carrying the pin token.
func WithPin(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, pinKey{}, token)
}

// PinFromContext returns the pin token ctx carries, if any.
func PinFromContext(ctx context.Context) (string, bool) {
	t, ok := ctx.Value(pinKey{}).(string)
	return t, ok && t != ""
}

// PinMiddleware puts the pin of an incoming request (header X-Sluice-Pin,
// else cookie sluice_pin) into the request's context, where PinTransport
// finds it for outgoing calls made with that context. Requests without a pin
// pass through unchanged. The token is not validated here: the Sluice proxy
// does that; it is never logged.
func PinMiddleware(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := r.Header.Get(PinHeader)
		if token == "" {
			if ck, err := r.Cookie(PinCookie); err == nil {
				token = ck.Value
			}
		}
		if token != "" {
			r = r.WithContext(WithPin(r.Context(), token))
		}
		h.ServeHTTP(w, r)
	})
}

// PinTransport returns a RoundTripper that sends the pin of each request's
// context (see PinMiddleware, WithPin) as the X-Sluice-Pin header, unless the
// request already has one, then hands the request to rt
// (http.DefaultTransport when nil). The caller's request is not modified.
func PinTransport(rt http.RoundTripper) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return pinTransport{rt: rt}
}

type pinTransport struct{ rt http.RoundTripper }

// RoundTrip adds the context's pin header to a clone of r and sends it.
func (t pinTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if token, ok := PinFromContext(r.Context()); ok && r.Header.Get(PinHeader) == "" {
		r = r.Clone(r.Context())
		r.Header.Set(PinHeader, token)
	}
	return t.rt.RoundTrip(r)
}

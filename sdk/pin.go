package sdk

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
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

// PinHostsInternal, given to PinTransport as a pattern, stands for the
// hosts a pin goes to by default: names without a dot ("payments",
// "localhost") or ending in .local (so .cluster.local), .localhost,
// .internal, .svc or .home.arpa, and IP addresses that are loopback or
// private (10/8, 172.16/12, 192.168/16, fc00::/7).
const PinHostsInternal = "(internal)"

// PinTransport returns a RoundTripper that sends the pin of each request's
// context (see PinMiddleware, WithPin) as the X-Sluice-Pin header to the
// hosts allow names, then hands the request to rt (http.DefaultTransport
// when nil). A request to any other host goes out without the pin: a pin
// routes requests to chosen instances for as long as it lives, so it must
// not leak to third parties a service calls. A request that already carries
// the header is sent as it is; the caller's request is never modified.
//
// Each pattern of allow is one of:
//
//	"payments"              a host name, compared case-insensitively
//	"*.example.com"         any name ending in ".example.com"
//	"10.1.2.3", "10.0.0.0/8", "fd00::/8"
//	                        an IP address, or a range of them (IP hosts only)
//	"*"                     every host
//	PinHostsInternal        the default set (see PinHostsInternal)
//
// With no pattern, allow is PinHostsInternal. PinTransport panics on a
// pattern that is none of these (a programming error, as a bad expression
// is to regexp.MustCompile). The RoundTripper is safe for concurrent use.
func PinTransport(rt http.RoundTripper, allow ...string) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	if len(allow) == 0 {
		allow = []string{PinHostsInternal}
	}
	hosts, err := parsePinHosts(allow)
	if err != nil {
		panic("sdk: PinTransport: " + err.Error())
	}
	return pinTransport{rt: rt, hosts: hosts}
}

type pinTransport struct {
	rt    http.RoundTripper
	hosts *pinHosts
}

// RoundTrip adds the context's pin header to a clone of r, when r's host
// is allowed, and sends it.
func (t pinTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if token, ok := PinFromContext(r.Context()); ok && r.Header.Get(PinHeader) == "" && t.hosts.allows(r.URL.Hostname()) {
		r = r.Clone(r.Context())
		r.Header.Set(PinHeader, token)
	}
	return t.rt.RoundTrip(r)
}

// pinHosts is a parsed allow list of PinTransport.
type pinHosts struct {
	all, internal bool
	names         map[string]bool
	suffixes      []string // ".example.com"
	ranges        []netip.Prefix
}

var internalRanges = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("fc00::/7"),
}

var internalSuffixes = []string{".local", ".localhost", ".internal", ".svc", ".home.arpa"}

func parsePinHosts(patterns []string) (*pinHosts, error) {
	h := &pinHosts{names: map[string]bool{}}
	for _, p := range patterns {
		switch {
		case p == "*":
			h.all = true
		case p == PinHostsInternal:
			h.internal = true
		case strings.Contains(p, "/"):
			r, err := netip.ParsePrefix(p)
			if err != nil {
				return nil, fmt.Errorf("pattern %q: not a CIDR range", p)
			}
			h.ranges = append(h.ranges, r.Masked())
		case strings.HasPrefix(p, "*."):
			if strings.ContainsAny(p[2:], "*:/ ") || p[2:] == "" {
				return nil, fmt.Errorf("pattern %q: want *.DOMAIN", p)
			}
			h.suffixes = append(h.suffixes, strings.ToLower(p[1:]))
		default:
			if a, err := netip.ParseAddr(p); err == nil {
				h.ranges = append(h.ranges, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
				continue
			}
			if p == "" || strings.ContainsAny(p, "*:/ ") {
				return nil, fmt.Errorf("pattern %q: want a host name, *.DOMAIN, an IP address, a CIDR range, \"*\" or sdk.PinHostsInternal", p)
			}
			h.names[strings.ToLower(p)] = true
		}
	}
	return h, nil
}

// allows reports whether the pin may be sent to host (a URL's Hostname:
// no port, no brackets).
func (h *pinHosts) allows(host string) bool {
	if h.all {
		return true
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap().WithZone("")
		for _, r := range h.ranges {
			if r.Contains(ip) {
				return true
			}
		}
		if h.internal {
			for _, r := range internalRanges {
				if r.Contains(ip) {
					return true
				}
			}
		}
		return false
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if name == "" {
		return false
	}
	if h.names[name] {
		return true
	}
	for _, s := range h.suffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	if h.internal {
		if !strings.Contains(name, ".") {
			return true
		}
		for _, s := range internalSuffixes {
			if strings.HasSuffix(name, s) {
				return true
			}
		}
	}
	return false
}

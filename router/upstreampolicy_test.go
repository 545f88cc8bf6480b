package router_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/router"
)

func mustRules(t *testing.T, ss ...string) []router.UpstreamRule {
	t.Helper()
	var out []router.UpstreamRule
	for _, s := range ss {
		r, err := router.ParseUpstreamRule(s)
		if err != nil {
			t.Fatalf("ParseUpstreamRule(%q): %v", s, err)
		}
		out = append(out, r)
	}
	return out
}

// lockedBuffer is a log sink tests read while the router writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestParseUpstreamRule(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/8":            "10.0.0.0/8",
		"10.1.2.3/8":            "10.0.0.0/8",
		"10.0.0.7":              "10.0.0.7",
		"10.0.0.7:8080":         "10.0.0.7:8080",
		"10.0.0.0/8:8080":       "10.0.0.0/8:8080",
		"::1":                   "::1",
		"fd00::/8":              "fd00::/8",
		"[::1]:7070":            "[::1]:7070",
		"[fd00::/8]:80":         "[fd00::/8]:80",
		"::ffff:10.0.0.7":       "10.0.0.7",
		"[::ffff:10.0.0.0/104]": "10.0.0.0/8",
	} {
		r, err := router.ParseUpstreamRule(in)
		if err != nil || r.String() != want {
			t.Errorf("ParseUpstreamRule(%q) = %v, %v; want %s", in, r, err, want)
		}
	}
	for _, in := range []string{"", "x", "10.0.0.0/33", "10.0.0.7:", "10.0.0.7:0", "10.0.0.7:65536", "[::1", "[::1]8080", "[::1]:", "fe80::1%eth0", "example.com", "10.0.0.7:http"} {
		if r, err := router.ParseUpstreamRule(in); err == nil {
			t.Errorf("ParseUpstreamRule(%q) = %v, want an error", in, r)
		}
	}
}

// TestUpstreamPolicyPrecedence pins the documented order: the deny list
// wins; own listeners and built-in rules are lifted only by an allow rule
// at least as narrow; a non-empty allow list refuses the rest.
func TestUpstreamPolicyPrecedence(t *testing.T) {
	own := netip.MustParseAddrPort("127.0.0.1:7070")
	anyOwn := netip.MustParseAddrPort("0.0.0.0:7090")
	cases := []struct {
		name        string
		allow, deny []string
		addr        string
		refused     string // "" allowed, else a piece of the reason
	}{
		{name: "loopback", addr: "127.0.0.1:9001"},
		{name: "private", addr: "10.0.0.7:8080"},
		{name: "public", addr: "203.0.113.9:443"},
		{name: "metadata", addr: "169.254.169.254:80", refused: "cloud metadata"},
		{name: "metadata mapped", addr: "[::ffff:169.254.169.254]:80", refused: "cloud metadata"},
		{name: "metadata v6", addr: "[fd00:ec2::254]:80", refused: "cloud metadata"},
		{name: "alibaba", addr: "100.100.100.200:80", refused: "Alibaba"},
		{name: "link-local", addr: "169.254.10.1:80", refused: "link-local"},
		{name: "link-local v6", addr: "[fe80::1]:80", refused: "link-local"},
		{name: "own listener", addr: "127.0.0.1:7070", refused: "listener of this process"},
		{name: "own listener via 0.0.0.0", addr: "0.0.0.0:7070", refused: "listener of this process"},
		{name: "own wildcard listener on loopback", addr: "127.0.0.5:7090", refused: "listener of this process"},
		{name: "own wildcard listener via ::1", addr: "[::1]:7090", refused: "listener of this process"},
		{name: "other port of own host", addr: "127.0.0.1:7071"},
		{name: "broad allow does not lift metadata", allow: []string{"0.0.0.0/0"}, addr: "169.254.169.254:80", refused: "cloud metadata"},
		{name: "broad allow does not lift own listener", allow: []string{"127.0.0.0/8"}, addr: "127.0.0.1:7070", refused: "listener of this process"},
		{name: "narrow allow lifts link-local", allow: []string{"169.254.10.0/24"}, addr: "169.254.10.1:80"},
		{name: "link-local allow does not lift metadata", allow: []string{"169.254.0.0/16"}, addr: "169.254.169.254:80", refused: "cloud metadata"},
		{name: "exact allow lifts metadata", allow: []string{"169.254.169.254"}, addr: "169.254.169.254:80"},
		{name: "exact allow lifts own listener", allow: []string{"127.0.0.1:7070"}, addr: "127.0.0.1:7070"},
		{name: "allow list refuses the rest", allow: []string{"10.0.0.0/8"}, addr: "127.0.0.1:9001", refused: "not in the upstream allow list"},
		{name: "allow list admits its own", allow: []string{"10.0.0.0/8"}, addr: "10.2.3.4:80"},
		{name: "deny wins over allow", allow: []string{"10.0.0.7"}, deny: []string{"10.0.0.0/8"}, addr: "10.0.0.7:80", refused: "deny list (10.0.0.0/8)"},
		{name: "deny with a port", deny: []string{"127.0.0.1:8080"}, addr: "127.0.0.1:8080", refused: "deny list (127.0.0.1:8080)"},
		{name: "deny with a port spares other ports", deny: []string{"127.0.0.1:8080"}, addr: "127.0.0.1:8081"},
		{name: "deny v6 catches mapped v4", deny: []string{"10.0.0.0/8"}, addr: "[::ffff:10.1.1.1]:80", refused: "deny list"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := router.New(router.Config{Upstream: router.UpstreamPolicy{
				Allow: mustRules(t, tc.allow...), Deny: mustRules(t, tc.deny...), Own: []netip.AddrPort{own, anyOwn},
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			err = r.CheckUpstream(netip.MustParseAddrPort(tc.addr))
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("%s refused: %v", tc.addr, err)
			case tc.refused != "" && (!errors.Is(err, router.ErrUpstreamRefused) || !strings.Contains(err.Error(), tc.refused)):
				t.Fatalf("%s: %v, want a refusal naming %q", tc.addr, err, tc.refused)
			}
		})
	}
}

// TestAttackSSRFToCloudMetadata: an agent registers its instance at the
// cloud metadata address (plainly, or IPv4-mapped to dodge a string check)
// and takes its round-robin share or pins to it. The proxy refuses to
// connect: 502 with the reason, counted, logged once per address.
func TestAttackSSRFToCloudMetadata(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		logs := &lockedBuffer{}
		good := startBackend(t, "orders-1", nil)
		pins := mapPins{"tok": {ID: "p1", Targets: map[string]string{"orders": "evil-1"}, Expires: now.Add(time.Hour)}}
		p := newProxy(t, router.Config{Pins: pins, Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(logs, nil))},
			[]router.Route{{Name: "orders", Match: router.Match{PathPrefix: "/"}, Upstream: router.Upstream{Service: "orders"}}})
		p.r.SetInstances("orders", []configsvc.Instance{
			inst("orders", "evil-1", "169.254.169.254:80"),
			inst("orders", "evil-2", "[::ffff:169.254.169.254]:80"),
			inst("orders", "orders-1", good.addr),
		})
		refused := 0
		for i := 0; i < 9; i++ {
			res := p.get(t, "/latest/meta-data/iam/security-credentials/")
			if res.status == 200 {
				if res.body != "orders-1" {
					t.Fatalf("200 from %q", res.body)
				}
				continue
			}
			refused++
			code, msg, details := errorOf(t, res)
			if res.status != 502 || code != "upstream_refused" || !strings.Contains(details["reason"], "cloud metadata") ||
				!strings.Contains(msg, "169.254.169.254") || res.header.Get(router.UpstreamRefusedHeader) == "" {
				t.Fatalf("request %d: %d %s %q %v, want 502 upstream_refused naming the reason", i, res.status, code, msg, details)
			}
		}
		if refused != 6 {
			t.Fatalf("%d of 9 round-robin requests refused, want the 6 of the two metadata instances", refused)
		}
		res := p.do(t, "GET", "/latest/meta-data/", map[string]string{router.PinHeader: "tok"})
		if code, _, _ := errorOf(t, res); res.status != 502 || code != "upstream_refused" {
			t.Fatalf("pinned to the metadata instance: %d %s, want 502 upstream_refused", res.status, code)
		}
		p.metrics.mu.Lock()
		counted := p.metrics.refused["orders"]
		p.metrics.mu.Unlock()
		if counted != refused+1 {
			t.Errorf("refusals counted %d, want %d", counted, refused+1)
		}
		// Both instances are one address (the mapped form unmapped): one line.
		if n := strings.Count(logs.String(), "refused by the upstream policy"); n != 1 {
			t.Errorf("refusals logged %d times, want once per address (1):\n%s", n, logs)
		}
	})
}

// TestAttackSSRFToOwnListener: an instance registered at the admin API's
// address (here a stand-in backend), or a static route to it, would let
// anyone reach Sluice's own endpoints through the proxy, or loop. Every
// connection to an own listener is refused, also when the address is a DNS
// name that resolves to it, or 0.0.0.0.
func TestAttackSSRFToOwnListener(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		admin := startBackend(t, "admin-api", nil)
		own := netip.MustParseAddrPort(admin.addr)
		port := own.Port()
		routes := []router.Route{
			{Name: "orders", Match: router.Match{PathPrefix: "/orders"}, Upstream: router.Upstream{Service: "orders"}},
			{Name: "static", Match: router.Match{PathPrefix: "/static"}, Upstream: router.Upstream{Static: []string{admin.addr}}},
		}
		p := newProxy(t, router.Config{Upstream: router.UpstreamPolicy{Own: []netip.AddrPort{own}}}, routes)
		for _, addr := range []string{admin.addr, "localhost:" + itoa(port), "0.0.0.0:" + itoa(port)} {
			p.r.SetInstances("orders", []configsvc.Instance{inst("orders", "evil", addr)})
			res := p.get(t, "/orders/v1/tokens")
			code, _, details := errorOf(t, res)
			if res.status != 502 || code != "upstream_refused" || !strings.Contains(details["reason"], "listener of this process") {
				t.Fatalf("instance at %s: %d %s %v, want 502 upstream_refused", addr, res.status, code, details)
			}
		}
		if res := p.get(t, "/static/v1/tokens"); res.status != 502 {
			t.Fatalf("static route to an own listener: %d, want 502", res.status)
		}
		if n := admin.hits.Load(); n != 0 {
			t.Fatalf("the own listener was reached %d times", n)
		}

		// An operator who means it lifts the refusal with an exact allow rule.
		lifted := newProxy(t, router.Config{Upstream: router.UpstreamPolicy{Own: []netip.AddrPort{own}, Allow: mustRules(t, admin.addr)}}, routes)
		if res := lifted.get(t, "/static/x"); res.status != 200 || res.body != "admin-api" {
			t.Fatalf("with --upstream-allow %s: %d %q, want 200", admin.addr, res.status, res.body)
		}
	})
}

// TestAttackSSRFDNSNameResolvesToDenied: a name is checked on the address
// it resolves to when connecting, so a name pointing at a denied range (or
// re-pointed there later) does not get through.
func TestAttackSSRFDNSNameResolvesToDenied(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		b := startBackend(t, "internal", nil)
		port := netip.MustParseAddrPort(b.addr).Port()
		p := newProxy(t, router.Config{Upstream: router.UpstreamPolicy{Deny: mustRules(t, "127.0.0.0/8", "::1")}},
			[]router.Route{{Name: "orders", Match: router.Match{PathPrefix: "/"}, Upstream: router.Upstream{Static: []string{"localhost:" + itoa(port)}}}})
		res := p.get(t, "/")
		if code, _, details := errorOf(t, res); res.status != 502 || code != "upstream_refused" || !strings.Contains(details["reason"], "deny list") {
			t.Fatalf("localhost:%d with loopback denied: %d %s %v, want 502 upstream_refused", port, res.status, code, details)
		}
		if b.hits.Load() != 0 {
			t.Fatal("the denied backend was reached")
		}
	})
}

// TestAttackInstanceAddressBypassesValidation: an instance node written to
// ZooKeeper by hand skips the API's validation; the proxy still never
// routes to an address Instance.Validate refuses.
func TestAttackInstanceAddressBypassesValidation(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		good := startBackend(t, "orders-1", nil)
		p := newProxy(t, router.Config{}, []router.Route{{Name: "orders", Match: router.Match{PathPrefix: "/"}, Upstream: router.Upstream{Service: "orders"}}})
		p.r.SetInstances("orders", []configsvc.Instance{
			inst("orders", "evil", "user:pw@"+good.addr+"/admin"),
			inst("orders", "orders-1", good.addr),
		})
		for i := 0; i < 4; i++ {
			if res := p.get(t, "/"); res.status != 200 || res.body != "orders-1" {
				t.Fatalf("request %d: %d %q; the malformed instance must be left out", i, res.status, res.body)
			}
		}
	})
}

func itoa(n uint16) string { return strconv.Itoa(int(n)) }

package router

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// UpstreamRefusedHeader carries, on the proxy's 502 answer to a request
// whose upstream the policy refused, the reason (also in the JSON body's
// details.reason).
const UpstreamRefusedHeader = "X-Sluice-Upstream-Refused"

// ErrUpstreamRefused is what an *UpstreamRefusedError matches with
// errors.Is: the upstream policy refused a connection.
var ErrUpstreamRefused = errors.New("upstream address refused by the proxy's upstream policy")

// UpstreamRefusedError says why the proxy did not connect to an upstream
// address. The proxy answers the request 502 with the reason.
type UpstreamRefusedError struct {
	// Addr is the resolved address the proxy was about to connect to.
	Addr netip.AddrPort
	// Reason says which rule refused it, e.g. "cloud metadata service".
	Reason string
}

// Error returns "upstream ADDR refused by the proxy's upstream policy: REASON".
func (e *UpstreamRefusedError) Error() string {
	return "upstream " + e.Addr.String() + " refused by the proxy's upstream policy: " + e.Reason
}

// Is reports whether target is ErrUpstreamRefused.
func (e *UpstreamRefusedError) Is(target error) bool { return target == ErrUpstreamRefused }

// UpstreamRule matches upstream addresses: an IP prefix and, optionally,
// one port.
type UpstreamRule struct {
	// Prefix is the address range; a single address is a /32 or /128.
	// IPv4-mapped IPv6 addresses match their IPv4 form.
	Prefix netip.Prefix
	// Port limits the rule to one port; 0 matches every port.
	Port uint16
	// Reason names the rule in refusals; empty for an operator's rule.
	Reason string
}

// ParseUpstreamRule parses a rule: an IP address or CIDR ("10.0.0.7",
// "10.0.0.0/8", "fd00::/8"), optionally with a port ("10.0.0.7:8080",
// "10.0.0.0/8:8080", "[::1]:8080", "[fd00::/8]:8080"). Errors name the
// text and the expected form.
func ParseUpstreamRule(s string) (UpstreamRule, error) {
	bad := fmt.Errorf("%q: must be an IP address or CIDR, optionally with :PORT (IPv6 in brackets when a port is given)", s)
	addr, port := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return UpstreamRule{}, bad
		}
		addr, port = s[1:end], s[end+1:]
		if port != "" {
			if port[0] != ':' {
				return UpstreamRule{}, bad
			}
			port = port[1:]
			if port == "" {
				return UpstreamRule{}, bad
			}
		}
	case strings.Count(s, ":") == 1:
		i := strings.IndexByte(s, ':')
		addr, port = s[:i], s[i+1:]
		if port == "" {
			return UpstreamRule{}, bad
		}
	}
	var r UpstreamRule
	if p, err := netip.ParsePrefix(addr); err == nil {
		r.Prefix = p
	} else if a, err := netip.ParseAddr(addr); err == nil && a.Zone() == "" {
		r.Prefix = netip.PrefixFrom(a, a.BitLen())
	} else {
		return UpstreamRule{}, bad
	}
	if a := r.Prefix.Addr(); a.Is4In6() && r.Prefix.Bits() >= 96 {
		r.Prefix = netip.PrefixFrom(a.Unmap(), r.Prefix.Bits()-96)
	}
	r.Prefix = r.Prefix.Masked()
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return UpstreamRule{}, bad
		}
		r.Port = uint16(n)
	}
	return r, nil
}

// String returns the rule in ParseUpstreamRule's syntax.
func (r UpstreamRule) String() string {
	s := r.Prefix.String()
	if r.Prefix.IsSingleIP() {
		s = r.Prefix.Addr().String()
	}
	if r.Port == 0 {
		return s
	}
	if r.Prefix.Addr().Is6() {
		s = "[" + s + "]"
	}
	return s + ":" + strconv.Itoa(int(r.Port))
}

func (r UpstreamRule) match(ip netip.Addr, port uint16) bool {
	return (r.Port == 0 || r.Port == port) && r.Prefix.Contains(ip)
}

// within reports whether r is at least as narrow as d: every address and
// port r matches, d matches too.
func (r UpstreamRule) within(d UpstreamRule) bool {
	return r.Prefix.Bits() >= d.Prefix.Bits() && d.Prefix.Contains(r.Prefix.Addr()) && (d.Port == 0 || r.Port == d.Port)
}

// BuiltinUpstreamDeny returns the rules every upstream policy applies on
// top of its own: cloud metadata services and link-local addresses, each
// with its Reason. An allow rule lifts one of them only when it is at least
// as narrow (see UpstreamPolicy).
func BuiltinUpstreamDeny() []UpstreamRule {
	rule := func(cidr, reason string) UpstreamRule {
		return UpstreamRule{Prefix: netip.MustParsePrefix(cidr), Reason: reason}
	}
	// Most specific first: the first match names the refusal.
	return []UpstreamRule{
		rule("169.254.169.254/32", "cloud metadata service (AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean etc.)"),
		rule("169.254.170.2/32", "cloud metadata service (AWS ECS task metadata)"),
		rule("fd00:ec2::254/128", "cloud metadata service (AWS, IPv6)"),
		rule("100.100.100.200/32", "cloud metadata service (Alibaba Cloud)"),
		rule("168.63.129.16/32", "cloud platform service (Azure WireServer)"),
		rule("169.254.0.0/16", "link-local address"),
		rule("fe80::/10", "link-local address"),
	}
}

// UpstreamPolicy decides which addresses the proxy may connect to. It is
// enforced when connecting, on the resolved IP address (a net.Dialer
// Control hook), so a DNS name that resolves, or later re-resolves, to a
// refused address is refused too. It applies to every upstream: registered
// instances, pinned instances and static addresses alike.
//
// Precedence, first match wins:
//  1. Deny: an address matching a Deny rule is refused.
//  2. Own listeners (Own), then the built-in rules (BuiltinUpstreamDeny):
//     refused unless an Allow rule that matches the address is at least as
//     narrow as the rule that refuses it (a broad Allow such as 0.0.0.0/0
//     does not lift them; "169.254.10.0/24" lifts link-local for that
//     range, "127.0.0.1:7070" lets the proxy reach a listener of its own).
//  3. Allow: when not empty, an address matching none of its rules is
//     refused.
//  4. Everything else, loopback and private ranges included, is allowed.
//
// The zero value applies the built-in rules only.
type UpstreamPolicy struct {
	// Allow, when not empty, lists the only addresses the proxy connects
	// to; a rule at least as narrow as a built-in or own-listener refusal
	// lifts it.
	Allow []UpstreamRule
	// Deny lists addresses the proxy never connects to; it wins over Allow.
	Deny []UpstreamRule
	// Own lists the addresses this process listens on (admin API, metrics,
	// debug, the proxy itself): connecting to them would loop or reach
	// Sluice's own endpoints. An unspecified host (0.0.0.0, ::) stands for
	// every local address: loopback and the interface addresses at the
	// time the router is made.
	Own []netip.AddrPort
}

// upstreamGuard is an UpstreamPolicy ready to check connections.
type upstreamGuard struct {
	allow, deny, builtin []UpstreamRule
	own                  []netip.AddrPort
	local                map[netip.Addr]bool // for own listeners on an unspecified host
	log                  *slog.Logger

	mu     sync.Mutex
	logged map[netip.AddrPort]bool
}

// maxLoggedRefusals bounds the addresses whose refusal is logged: each is
// logged once, and once this many were, further ones only count in metrics.
const maxLoggedRefusals = 1024

func newUpstreamGuard(p UpstreamPolicy, log *slog.Logger) *upstreamGuard {
	g := &upstreamGuard{allow: p.Allow, deny: p.Deny, builtin: BuiltinUpstreamDeny(), log: log, logged: map[netip.AddrPort]bool{}}
	for _, a := range p.Own {
		a = netip.AddrPortFrom(a.Addr().Unmap().WithZone(""), a.Port())
		g.own = append(g.own, a)
		if a.Addr().IsUnspecified() && g.local == nil {
			g.local = localAddrs()
		}
	}
	return g
}

// localAddrs returns the addresses of the host's interfaces.
func localAddrs() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out[ip.Unmap()] = true
			}
		}
	}
	return out
}

// check returns nil when the policy lets the proxy connect to ap.
func (g *upstreamGuard) check(ap netip.AddrPort) *UpstreamRefusedError {
	ip, port := ap.Addr().Unmap().WithZone(""), ap.Port()
	for _, d := range g.deny {
		if d.match(ip, port) {
			return &UpstreamRefusedError{Addr: ap, Reason: "in the upstream deny list (" + d.String() + ")"}
		}
	}
	for _, o := range g.own {
		if o.Port() == port && g.isOwn(o.Addr(), ip) && !g.lifted(UpstreamRule{Prefix: netip.PrefixFrom(ip, ip.BitLen()), Port: port}, ip, port) {
			return &UpstreamRefusedError{Addr: ap, Reason: "a listener of this process (" + o.String() + ")"}
		}
	}
	for _, b := range g.builtin {
		if b.match(ip, port) && !g.lifted(b, ip, port) {
			return &UpstreamRefusedError{Addr: ap, Reason: b.Reason}
		}
	}
	if len(g.allow) > 0 {
		for _, a := range g.allow {
			if a.match(ip, port) {
				return nil
			}
		}
		return &UpstreamRefusedError{Addr: ap, Reason: "not in the upstream allow list"}
	}
	return nil
}

// isOwn reports whether connecting to ip reaches a listener bound to
// listen (on the same port): the same address, or any local one when the
// listener or the target is unspecified (connecting to 0.0.0.0 reaches the
// local host).
func (g *upstreamGuard) isOwn(listen, ip netip.Addr) bool {
	switch {
	case listen == ip || ip.IsUnspecified():
		return true
	case listen.IsUnspecified():
		return ip.IsLoopback() || g.local[ip]
	}
	return false
}

// lifted reports whether an Allow rule matching ip:port is at least as
// narrow as the refusing rule r.
func (g *upstreamGuard) lifted(r UpstreamRule, ip netip.Addr, port uint16) bool {
	for _, a := range g.allow {
		if a.match(ip, port) && a.within(r) {
			return true
		}
	}
	return false
}

// control is the net.Dialer Control hook: it refuses, before the
// connection is made, every address the policy refuses.
func (g *upstreamGuard) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &UpstreamRefusedError{Reason: "unparsable address " + strconv.Quote(address)}
	}
	if e := g.check(ap); e != nil {
		g.logOnce(e)
		return e
	}
	return nil
}

// logOnce logs the first refusal of each address, up to maxLoggedRefusals
// addresses, so that a flood of requests to refused addresses neither
// floods the log nor grows memory.
func (g *upstreamGuard) logOnce(e *UpstreamRefusedError) {
	key := netip.AddrPortFrom(e.Addr.Addr().Unmap(), e.Addr.Port())
	g.mu.Lock()
	first := !g.logged[key] && len(g.logged) < maxLoggedRefusals
	if first {
		g.logged[key] = true
	}
	last := first && len(g.logged) == maxLoggedRefusals
	g.mu.Unlock()
	if first {
		g.log.Warn("upstream connection refused by the upstream policy", "addr", e.Addr.String(), "reason", e.Reason)
	}
	if last {
		g.log.Warn("upstream refusals: further addresses are not logged, only counted in metrics", "addresses_logged", maxLoggedRefusals)
	}
}

// CheckUpstream reports whether the router's upstream policy lets it
// connect to addr: nil, or an *UpstreamRefusedError saying why not. It is
// the check every connection the router opens goes through.
func (r *Router) CheckUpstream(addr netip.AddrPort) error {
	if e := r.guard.check(addr); e != nil {
		return e
	}
	return nil
}

package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/proxyserver"
)

// Flag values that check their input when it is set, so that a bad value is
// refused while the command line and the environment are read, with the
// flag's name or the environment variable's (see applyEnv), not later when
// the command uses it.

// levelFlag is a log level: debug, info, warn or error.
type levelFlag struct{ p *slog.Level }

func (f levelFlag) Set(s string) error {
	switch strings.ToLower(s) {
	case "debug", "info", "warn", "error":
		return f.p.UnmarshalText([]byte(s))
	}
	return fmt.Errorf("%q: must be debug, info, warn or error", s)
}

func (f levelFlag) String() string { return strings.ToLower(f.p.String()) }
func (f levelFlag) Type() string   { return "level" }

// choiceFlag is a string out of a fixed list.
type choiceFlag struct {
	p       *string
	choices []string
}

func (f choiceFlag) Set(s string) error {
	if !slices.Contains(f.choices, s) {
		return fmt.Errorf("%q: must be one of %s", s, strings.Join(f.choices, ", "))
	}
	*f.p = s
	return nil
}

func (f choiceFlag) String() string { return *f.p }
func (f choiceFlag) Type() string   { return strings.Join(f.choices, "|") }

// addrFlag is a listen address, HOST:PORT (the host may be empty: every
// interface), or empty.
type addrFlag struct{ p *string }

func (f addrFlag) Set(s string) error {
	if s != "" {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return fmt.Errorf("%q is not HOST:PORT", s)
		}
	}
	*f.p = s
	return nil
}

func (f addrFlag) String() string { return *f.p }
func (f addrFlag) Type() string   { return "host:port" }

// prefixesFlag is a comma-separated list of IP addresses and CIDRs; an
// address stands for itself alone (a /32 or /128). Each Set appends.
type prefixesFlag struct{ p *[]netip.Prefix }

func (f prefixesFlag) Set(s string) error {
	return eachListItem(s, func(part string) error {
		if p, err := netip.ParsePrefix(part); err == nil {
			*f.p = append(*f.p, p.Masked())
			return nil
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return fmt.Errorf("%q is neither an IP address nor a CIDR", part)
		}
		a = a.Unmap()
		*f.p = append(*f.p, netip.PrefixFrom(a, a.BitLen()))
		return nil
	})
}

// eachListItem calls f with each non-empty, trimmed item of the
// comma-separated list s, stopping at f's first error.
func eachListItem(s string, f func(item string) error) error {
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			if err := f(part); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f prefixesFlag) String() string { return strings.Join(prefixStrings(*f.p), ",") }
func (f prefixesFlag) Type() string   { return "ips|cidrs" }

// prefixStrings returns the prefixes in CIDR notation.
func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// upstreamRulesFlag is a comma-separated list of upstream policy rules
// (router.ParseUpstreamRule). Each Set appends.
type upstreamRulesFlag struct{ p *[]router.UpstreamRule }

func (f upstreamRulesFlag) Set(s string) error {
	return eachListItem(s, func(part string) error {
		r, err := router.ParseUpstreamRule(part)
		if err == nil {
			*f.p = append(*f.p, r)
		}
		return err
	})
}

func (f upstreamRulesFlag) String() string {
	out := make([]string, len(*f.p))
	for i, r := range *f.p {
		out[i] = r.String()
	}
	return strings.Join(out, ",")
}

func (f upstreamRulesFlag) Type() string { return "cidrs" }

// storeFlag is a store URL, bolt://PATH or zk://HOSTS/CHROOT, checked as
// openStore will read it. Empty is allowed: the command's default.
type storeFlag struct{ p *string }

func (f storeFlag) Set(s string) error {
	if s != "" {
		if _, err := parseStoreURL(s); err != nil {
			return err
		}
	}
	*f.p = s
	return nil
}

func (f storeFlag) String() string { return *f.p }
func (f storeFlag) Type() string   { return "url" }

// positiveDurationFlag is a time.Duration greater than zero.
type positiveDurationFlag struct{ p *time.Duration }

func (f positiveDurationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 10s, 1m30s)", s)
	}
	if d <= 0 {
		return fmt.Errorf("%q: must be more than 0", s)
	}
	*f.p = d
	return nil
}

func (f positiveDurationFlag) String() string { return f.p.String() }
func (f positiveDurationFlag) Type() string   { return "duration" }

// byteSizeFlag is a size in bytes: a whole number, optionally with a unit
// KiB, MiB or GiB ("16MiB"); -1 means no limit.
type byteSizeFlag struct{ p *int64 }

func (f byteSizeFlag) Set(s string) error {
	num, mult := strings.TrimSpace(s), int64(1)
	for unit, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(num, unit) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, unit)), m
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < -1 || n == -1 && mult != 1 || n > (1<<62)/mult {
		return fmt.Errorf("%q is not a size such as 16MiB, 512KiB or 1048576 (-1: no limit)", s)
	}
	*f.p = n * mult
	return nil
}

func (f byteSizeFlag) String() string {
	n := *f.p
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n > 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

func (f byteSizeFlag) Type() string { return "size" }

// engineFlag is the proxy's engine: proxyserver.EngineFast, EngineStd or
// EngineLoop.
type engineFlag struct{ p *string }

func (f engineFlag) Set(s string) error {
	if s != proxyserver.EngineFast && s != proxyserver.EngineStd && s != proxyserver.EngineLoop {
		return fmt.Errorf("%q: must be %s, %s or %s", s, proxyserver.EngineFast, proxyserver.EngineStd, proxyserver.EngineLoop)
	}
	*f.p = s
	return nil
}

func (f engineFlag) String() string { return *f.p }
func (f engineFlag) Type() string   { return "engine" }

// serversFlag is a comma-separated list of admin server URLs, each an
// http:// or https:// URL with a host. A URL with user info sets
// *userInfo instead of failing, because pflag would echo the value (a
// password) in its error; the command refuses it after parsing.
type serversFlag struct {
	p        *[]string
	userInfo *bool
}

func (f serversFlag) Set(s string) error {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		pu, err := url.Parse(u)
		if err == nil && pu.User != nil {
			*f.userInfo = true
			continue
		}
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return fmt.Errorf("%q is not an http:// or https:// URL such as http://10.0.0.5:7070", u)
		}
		out = append(out, u)
	}
	*f.p = out
	return nil
}

func (f serversFlag) String() string { return strings.Join(*f.p, ",") }
func (f serversFlag) Type() string   { return "urls" }

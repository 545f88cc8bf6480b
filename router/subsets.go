package router

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/sluicehq/sluice/configsvc"
)

// Bounds of subsets.
const (
	// MaxSubsets bounds Upstream.Subsets.
	MaxSubsets = 32
	// MaxSubsetWeight bounds Subset.Weight.
	MaxSubsetWeight = 10000
	// MaxSubsetNameLen bounds Subset.Name.
	MaxSubsetNameLen = 63
)

// Subset is a share of a route's traffic sent to the instances of its
// service whose labels include every entry of Labels (a canary cohort:
// {track: canary}). Each request goes to one subset, picked in proportion
// to Weight among the subsets that have instances (or by Sticky, or by
// Force), and is balanced by the route's balancer within it; its retries
// stay in it. An instance may be in several subsets; one in none gets no
// traffic from the route.
type Subset struct {
	// Name identifies the subset in Force, state and logs; empty means
	// the values of Labels in the order of their keys, joined by ","
	// ({track: canary} is "canary").
	Name string
	// Labels select the instances (at least one entry).
	Labels map[string]string
	// Weight is the subset's share (0..MaxSubsetWeight); a subset of weight
	// 0 gets only requests that Force sends to it.
	Weight int
}

// EffectiveName returns Name, or the default made of the label values.
func (s Subset) EffectiveName() string {
	if s.Name != "" {
		return s.Name
	}
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	vals := make([]string, len(keys))
	for i, k := range keys {
		vals[i] = s.Labels[k]
	}
	return strings.Join(vals, ",")
}

// Sticky sends all requests of one client to the same subset: the subset
// is chosen by a hash of the client's key, in proportion to the weights,
// so that the same key lands in the same subset on every proxy while the
// subsets with instances stay the same. Exactly one field is set. A
// request without the key (no such header or cookie) gets a random subset.
type Sticky struct {
	// Header names the request header whose value is the key.
	Header string
	// Cookie names the cookie whose value is the key.
	Cookie string
	// ClientIP makes the client's address the key (the peer, or with
	// trusted proxies the address X-Forwarded-For names; see
	// Config.TrustedProxies).
	ClientIP bool
}

// Force lets a request choose its subset by name: the value of the header
// (or, when the header is absent, of the cookie) naming a subset sends the
// request there, whatever the weights; a value naming no subset is
// ignored. Anyone who can send the header can choose, so strip it at the
// edge where that matters. A forced subset without instances answers 503.
type Force struct {
	// Header names the request header carrying the subset's name, e.g.
	// X-Sluice-Subset.
	Header string
	// Cookie names the cookie carrying it.
	Cookie string
}

// validateSubsets checks u's subsets, sticky and force; p is the path of
// the upstream ("routes[2].upstream").
func (u *Upstream) validateSubsets(p string) error {
	if len(u.Subsets) == 0 {
		switch {
		case u.Sticky != nil:
			return fieldErr(p+".sticky", "", "needs subsets")
		case u.Force != nil:
			return fieldErr(p+".force", "", "needs subsets")
		}
		return nil
	}
	if u.Service == "" {
		return fieldErr(p+".subsets", "", "need a service upstream: subsets select instances by their labels")
	}
	if len(u.Subsets) > MaxSubsets {
		return fieldErr(p+".subsets", strconv.Itoa(len(u.Subsets)), fmt.Sprintf("must be at most %d", MaxSubsets))
	}
	names := map[string]int{}
	total := 0
	for i, s := range u.Subsets {
		sp := fmt.Sprintf("%s.subsets[%d]", p, i)
		if err := s.validate(sp); err != nil {
			return err
		}
		name := s.EffectiveName()
		if j, dup := names[name]; dup {
			return fieldErr(sp+".name", name, fmt.Sprintf("duplicates the name of subsets[%d]; set name", j))
		}
		names[name] = i
		total += s.Weight
	}
	if total == 0 {
		return fieldErr(p+".subsets", "", "the weights must not all be 0")
	}
	if s := u.Sticky; s != nil {
		if err := s.validate(p + ".sticky"); err != nil {
			return err
		}
	}
	if f := u.Force; f != nil {
		return f.validate(p + ".force")
	}
	return nil
}

// validate checks one subset's labels, name and weight; p is its path.
func (s Subset) validate(p string) error {
	if len(s.Labels) == 0 || len(s.Labels) > configsvc.MaxLabels {
		return fieldErr(p+".labels", "", fmt.Sprintf("must hold between 1 and %d labels", configsvc.MaxLabels))
	}
	for k := range s.Labels {
		if k == "" {
			return fieldErr(p+".labels", k, "label names must not be empty")
		}
	}
	if s.Name != "" && (!validToken(s.Name) || len(s.Name) > MaxSubsetNameLen) {
		return fieldErr(p+".name", s.Name, fmt.Sprintf("must be a token of letters, digits and -._~ (at most %d bytes)", MaxSubsetNameLen))
	}
	if s.Weight < 0 || s.Weight > MaxSubsetWeight {
		return fieldErr(p+".weight", strconv.Itoa(s.Weight), fmt.Sprintf("must be between 0 and %d", MaxSubsetWeight))
	}
	return nil
}

// validate checks that s names exactly one valid key; p is its path.
func (s *Sticky) validate(p string) error {
	n := 0
	if s.Header != "" {
		n++
		if !validToken(s.Header) {
			return fieldErr(p+".header", s.Header, "must be an HTTP header name")
		}
	}
	if s.Cookie != "" {
		n++
		if !validToken(s.Cookie) {
			return fieldErr(p+".cookie", s.Cookie, "must be a cookie name")
		}
	}
	if s.ClientIP {
		n++
	}
	if n != 1 {
		return fieldErr(p, "", "must set exactly one of header, cookie and client_ip")
	}
	return nil
}

// validate checks that f names a valid header, cookie or both; p is its
// path.
func (f *Force) validate(p string) error {
	if f.Header == "" && f.Cookie == "" {
		return fieldErr(p, "", "must set header, cookie or both")
	}
	if f.Header != "" && !validToken(f.Header) {
		return fieldErr(p+".header", f.Header, "must be an HTTP header name")
	}
	if f.Cookie != "" && !validToken(f.Cookie) {
		return fieldErr(p+".cookie", f.Cookie, "must be a cookie name")
	}
	return nil
}

// String renders the split for Table.String.
func (u *Upstream) subsetsString() string {
	if len(u.Subsets) == 0 {
		return ""
	}
	var b strings.Builder
	for _, s := range u.Subsets {
		keys := make([]string, 0, len(s.Labels))
		for k := range s.Labels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, " subset[%s]=%d{", s.EffectiveName(), s.Weight)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=%s", k, s.Labels[k])
		}
		b.WriteByte('}')
	}
	if s := u.Sticky; s != nil {
		b.WriteString(" sticky=" + stickyString(s))
	}
	if f := u.Force; f != nil {
		b.WriteString(" force=" + forceString(f))
	}
	return b.String()
}

func stickyString(s *Sticky) string {
	switch {
	case s.Header != "":
		return "header:" + http.CanonicalHeaderKey(s.Header)
	case s.Cookie != "":
		return "cookie:" + s.Cookie
	}
	return "client_ip"
}

func forceString(f *Force) string {
	var parts []string
	if f.Header != "" {
		parts = append(parts, "header:"+http.CanonicalHeaderKey(f.Header))
	}
	if f.Cookie != "" {
		parts = append(parts, "cookie:"+f.Cookie)
	}
	return strings.Join(parts, ",")
}

// pool is a set of instances a request is balanced over: a route's, or
// one of its subsets'.
type pool struct {
	insts []*inst
	rr    atomic.Uint64
	cum   []int // weighted: cumulative weights
	what  string
}

// subsetRT is one subset of a route in a table.
type subsetRT struct {
	name   string
	weight int
	pool   pool
}

// subsetsRT is a route's split: its subsets and how to choose among them.
type subsetsRT struct {
	all        []*subsetRT
	byName     map[string]*subsetRT
	live       []*subsetRT // subsets with instances and a weight above 0
	cum        []int       // cumulative weights of live
	stickyKind string      // "header", "cookie", "ip" or ""
	stickyName string
	forceHdr   string
	forceCk    string
}

// buildSubsets splits rt's instances into its subsets by their labels.
// Caller holds r.mu.
func (r *Router) buildSubsets(rt *routeRT, rc *Route) {
	u := &rc.Upstream
	if len(u.Subsets) == 0 {
		return
	}
	labels := make(map[string]map[string]string, len(rt.insts))
	for _, in := range r.insts[u.Service] {
		labels[in.ID] = in.Labels
	}
	ss := &subsetsRT{byName: make(map[string]*subsetRT, len(u.Subsets))}
	for _, s := range u.Subsets {
		sr := &subsetRT{name: s.EffectiveName(), weight: s.Weight}
		sr.pool.what = "subset " + sr.name + " of service " + u.Service
		total := 0
		for i, in := range rt.insts {
			if !hasLabels(labels[in.id], s.Labels) {
				continue
			}
			w := rt.cum[i]
			if i > 0 {
				w -= rt.cum[i-1]
			}
			total += w
			sr.pool.insts = append(sr.pool.insts, in)
			sr.pool.cum = append(sr.pool.cum, total)
		}
		ss.all = append(ss.all, sr)
		ss.byName[sr.name] = sr
		if len(sr.pool.insts) > 0 && sr.weight > 0 {
			ss.live = append(ss.live, sr)
			ss.cum = append(ss.cum, sr.weight+lastOr0(ss.cum))
		}
	}
	if s := u.Sticky; s != nil {
		switch {
		case s.Header != "":
			ss.stickyKind, ss.stickyName = "header", http.CanonicalHeaderKey(s.Header)
		case s.Cookie != "":
			ss.stickyKind, ss.stickyName = "cookie", s.Cookie
		default:
			ss.stickyKind = "ip"
		}
	}
	if f := u.Force; f != nil {
		if f.Header != "" {
			ss.forceHdr = http.CanonicalHeaderKey(f.Header)
		}
		ss.forceCk = f.Cookie
	}
	rt.subsets = ss
}

func lastOr0(s []int) int {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1]
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if w, ok := have[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// choosePool picks the subset of a request: forced, else sticky, else at
// random by weight. It returns nil, with the name, for a forced subset
// without instances; nil and "" when no subset has instances.
func (r *Router) choosePool(ss *subsetsRT, in Inbound) (*pool, string) {
	if name := ss.forced(in); name != "" {
		if s := ss.byName[name]; s != nil {
			if len(s.pool.insts) == 0 {
				return nil, name
			}
			return &s.pool, ""
		}
	}
	if len(ss.live) == 0 {
		return nil, ""
	}
	total := ss.cum[len(ss.cum)-1]
	var x int
	if key := r.stickyKey(ss, in); key != "" {
		h := fnv.New64a()
		_, _ = h.Write([]byte(key))
		x = int(mix64(h.Sum64()) % uint64(total))
	} else {
		x = rand.IntN(total)
	}
	return &ss.live[searchCum(ss.cum, x)].pool, ""
}

// forced returns the subset name a request asks for, or "".
func (ss *subsetsRT) forced(in Inbound) string {
	if ss.forceHdr != "" {
		if v := in.Header(ss.forceHdr); v != "" {
			return v
		}
	}
	if ss.forceCk != "" {
		return in.Cookie(ss.forceCk)
	}
	return ""
}

func (r *Router) stickyKey(ss *subsetsRT, in Inbound) string {
	switch ss.stickyKind {
	case "header":
		return in.Header(ss.stickyName)
	case "cookie":
		return in.Cookie(ss.stickyName)
	case "ip":
		return ipKey(r.clientIP(in))
	}
	return ""
}

// mix64 spreads the bits of an FNV hash (its low bits vary little for
// short keys that differ in the last byte) before it is reduced.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

// searchCum returns the index of the first cumulative weight above x.
func searchCum(cum []int, x int) int {
	lo, hi := 0, len(cum)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if cum[mid] > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

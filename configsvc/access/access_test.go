package access

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/lifecycle"
	"github.com/sluicehq/sluice/configsvc/testkit"
)

// newClock returns the fake clock of these tests, at 2026-01-02 03:04:05 UTC.
func newClock() *testkit.Clock { return testkit.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) }

func mustCreate(t *testing.T, ts *Tokens, name string, grants ...string) (string, Token) {
	t.Helper()
	var gs []Grant
	for _, s := range grants {
		g, err := ParseGrant(s)
		if err != nil {
			t.Fatalf("ParseGrant(%q): %v", s, err)
		}
		gs = append(gs, g)
	}
	secret, tok, err := ts.Create(context.Background(), name, gs, "test")
	if err != nil {
		t.Fatalf("Create(%q): %v", name, err)
	}
	return secret, tok
}

func TestTokensLifecycle(t *testing.T) {
	ctx := context.Background()
	recs := newMemRecords()
	ts := NewTokens(recs, newClock().Now)
	secret, tok := mustCreate(t, ts, "ci", "editor:team-a-*", "viewer:orders")

	if !strings.HasPrefix(secret, TokenPrefix) || len(secret) != tokenLen {
		t.Fatalf("token %d chars with prefix %q; want %d chars with %q", len(secret), secret[:4], tokenLen, TokenPrefix)
	}
	if tok.ID != HashToken(secret)[:12] {
		t.Errorf("id = %s, want first 12 hex of the hash", tok.ID)
	}
	// The token itself is stored nowhere.
	for c, m := range recs.data {
		for id, d := range m {
			if strings.Contains(id, secret) || bytes.Contains(d, []byte(secret)) || bytes.Contains(d, []byte(secret[len(TokenPrefix):])) {
				t.Fatalf("collection %s record %s contains the token", c, id)
			}
		}
	}
	p, err := ts.Authenticate(ctx, secret)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if p.TokenID != tok.ID || p.Name != "ci" || len(p.Grants) != 2 || p.IsAdmin() {
		t.Errorf("principal = %+v", p)
	}
	list, err := ts.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != tok.ID {
		t.Fatalf("List = %v, %v", list, err)
	}
	if _, err := ts.Revoke(ctx, tok.ID); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if _, err := ts.Authenticate(ctx, secret); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("Authenticate after revoke: %v, want ErrUnauthenticated", err)
	}
	if _, err := ts.Revoke(ctx, tok.ID); !errors.Is(err, configsvc.ErrNotFound) {
		t.Errorf("second Revoke: %v, want ErrNotFound", err)
	}
}

func TestAuthenticateRejects(t *testing.T) {
	ts := NewTokens(newMemRecords(), nil)
	secret, _ := mustCreate(t, ts, "x", "admin")
	for name, tok := range map[string]string{
		"empty":          "",
		"no prefix":      secret[len(TokenPrefix):] + "abcd",
		"wrong prefix":   "slp_" + secret[4:],
		"one char off":   secret[:len(secret)-1] + string(rune(secret[len(secret)-1]^1)),
		"truncated":      secret[:20],
		"hash not token": HashToken(secret),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ts.Authenticate(context.Background(), tok)
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("err = %v, want ErrUnauthenticated", err)
			}
			if tok != "" && strings.Contains(err.Error(), tok) {
				t.Fatalf("error echoes the token: %v", err)
			}
		})
	}
}

func TestCreateRefusesBadInput(t *testing.T) {
	ts := NewTokens(newMemRecords(), nil)
	for name, tc := range map[string]struct {
		name  string
		roles []Grant
	}{
		"empty name":      {"", []Grant{{Role: RoleAdmin}}},
		"control char":    {"a\nb", []Grant{{Role: RoleAdmin}}},
		"no roles":        {"x", nil},
		"unknown role":    {"x", []Grant{{Role: "root", Pattern: "x"}}},
		"empty pattern":   {"x", []Grant{{Role: RoleEditor}}},
		"slash pattern":   {"x", []Grant{{Role: RoleEditor, Pattern: "a/b"}}},
		"admin with name": {"x", []Grant{{Role: RoleAdmin, Pattern: "orders"}}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := ts.Create(context.Background(), tc.name, tc.roles, "t"); !errors.Is(err, configsvc.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestAuthorizerDecide(t *testing.T) {
	p := func(grants ...string) *Principal {
		pr := &Principal{TokenID: "t", Name: "t"}
		for _, s := range grants {
			g, err := ParseGrant(s)
			if err != nil {
				t.Fatal(err)
			}
			pr.Grants = append(pr.Grants, g)
		}
		return pr
	}
	svc := func(n string) Target { return Target{Ref: configsvc.Service(n)} }
	grp := func(n string, users ...string) Target { return Target{Ref: configsvc.Group(n), Users: users} }
	tests := []struct {
		name string
		p    *Principal
		a    Action
		t    Target
		want bool
	}{
		{"nil principal", nil, ActionRead, svc("orders"), false},
		{"admin deletes", p("admin"), ActionDelete, svc("orders"), true},
		{"admin edits system", p("admin"), ActionPublish, svc(configsvc.SystemService), true},
		{"editor publishes in glob", p("editor:team-a-*"), ActionPublish, svc("team-a-orders"), true},
		{"editor outside glob", p("editor:team-a-*"), ActionPublish, svc("team-b-orders"), false},
		{"editor reads group of same name", p("editor:shared-*"), ActionRead, grp("shared-redis"), true},
		{"editor may not delete", p("editor:*"), ActionDelete, svc("orders"), false},
		{"editor may not manage", p("editor:*"), ActionManage, Target{}, false},
		{"editor star may not edit system", p("editor:*"), ActionPublish, svc(configsvc.SystemService), false},
		{"editor star may read system", p("editor:*"), ActionRead, svc(configsvc.SystemService), true},
		{"editor pins", p("editor:orders"), ActionPin, svc("orders"), true},
		{"viewer reads", p("viewer:orders"), ActionRead, svc("orders"), true},
		{"viewer may not publish", p("viewer:orders"), ActionPublish, svc("orders"), false},
		{"viewer may not register", p("viewer:orders"), ActionRegister, svc("orders"), false},
		{"agent registers", p("agent:orders"), ActionRegister, svc("orders"), true},
		{"agent reads linked group", p("agent:orders"), ActionRead, grp("redis", "billing", "orders"), true},
		{"agent may not read unlinked group", p("agent:orders"), ActionRead, grp("redis", "billing"), false},
		{"linked group read only", p("editor:orders"), ActionPublish, grp("redis", "orders"), false},
		{"agent may not publish", p("agent:orders"), ActionPublish, svc("orders"), false},
		{"exact name no prefix match", p("viewer:orders"), ActionRead, svc("orders-2"), false},
		{"viewer lists instances", p("viewer:orders"), ActionInstances, svc("orders"), true},
		{"proxy reads system", p("proxy:*"), ActionRead, svc(configsvc.SystemService), true},
		{"proxy registers in system", p("proxy:*"), ActionRegister, svc(configsvc.SystemService), true},
		{"narrow proxy registers in system", p("proxy:orders"), ActionRegister, svc(configsvc.SystemService), true},
		{"proxy lists instances in pattern", p("proxy:*"), ActionInstances, svc("orders"), true},
		{"proxy outside pattern", p("proxy:orders"), ActionInstances, svc("billing"), false},
		{"proxy reads no service files", p("proxy:*"), ActionRead, svc("orders"), false},
		{"proxy reads no group", p("proxy:*"), ActionRead, grp("redis", "orders"), false},
		{"proxy registers no service instance", p("proxy:*"), ActionRegister, svc("orders"), false},
		{"proxy may not publish system", p("proxy:*"), ActionPublish, svc(configsvc.SystemService), false},
		{"proxy may not pin", p("proxy:*"), ActionPin, svc("orders"), false},
		{"proxy acts as a proxy", p("proxy:orders"), ActionProxy, svc(configsvc.SystemService), true},
		{"admin acts as a proxy", p("admin"), ActionProxy, svc(configsvc.SystemService), true},
		{"viewer may not act as a proxy", p("viewer:*"), ActionProxy, svc(configsvc.SystemService), false},
		{"editor may not act as a proxy", p("editor:*"), ActionProxy, svc("orders"), false},
		{"agent may not act as a proxy", p("agent:*"), ActionProxy, svc(configsvc.SystemService), false},
		{"proxy may not manage", p("proxy:*"), ActionManage, svc("orders"), false},
		{"proxy may not create", p("proxy:*"), ActionCreate, svc("orders"), false},
		{"proxy may not link", p("proxy:*"), ActionLink, svc("orders"), false},
	}
	var az Authorizer
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := az.Decide(tc.p, tc.a, tc.t)
			if d.Allowed != tc.want {
				t.Fatalf("Decide = %+v, want allowed=%v", d, tc.want)
			}
			if d.Reason == "" {
				t.Fatal("decision without a reason")
			}
		})
	}
}

// TestAttackFakeProxyRegistersInSystem: an agent or editor granted on every
// service used to pass for a proxy by registering in sluice-system, where
// proxies divide cluster-scoped rate limits by their number; only admins
// and the proxy role may register there now.
func TestAttackFakeProxyRegistersInSystem(t *testing.T) {
	var az Authorizer
	for _, grant := range []string{"agent:*", "editor:*", "agent:sluice-system", "editor:sluice-*"} {
		g, err := ParseGrant(grant)
		if err != nil {
			t.Fatal(err)
		}
		d := az.Decide(&Principal{TokenID: "t", Grants: []Grant{g}}, ActionRegister, Target{Ref: configsvc.Service(configsvc.SystemService)})
		if d.Allowed || !strings.Contains(d.Reason, "proxies") {
			t.Errorf("%s: Decide = %+v, want a refusal naming the proxy role", grant, d)
		}
	}
}

// TestProxyGrantCreatesOnlyTheSystemService: a proxy grant may create
// sluice-system (empty, to watch it before the first routes) and no other
// service; other grants, even matching it, may not create it.
func TestProxyGrantCreatesOnlyTheSystemService(t *testing.T) {
	var az Authorizer
	system := Target{Ref: configsvc.Service(configsvc.SystemService)}
	grant := func(s string) *Principal {
		g, err := ParseGrant(s)
		if err != nil {
			t.Fatal(err)
		}
		return &Principal{TokenID: "t", Grants: []Grant{g}}
	}
	if d := az.Decide(grant("proxy:orders"), ActionCreate, system); !d.Allowed {
		t.Errorf("proxy:orders creating %s: %+v, want allowed", configsvc.SystemService, d)
	}
	for _, a := range []Action{ActionPublish, ActionLink, ActionPin, ActionDelete} {
		if d := az.Decide(grant("proxy:*"), a, system); d.Allowed {
			t.Errorf("proxy:* may %s %s: %+v", a, configsvc.SystemService, d)
		}
	}
	if d := az.Decide(grant("proxy:*"), ActionCreate, Target{Ref: configsvc.Service("orders")}); d.Allowed {
		t.Errorf("proxy:* may create orders: %+v", d)
	}
	for _, g := range []string{"editor:*", "agent:sluice-system", "viewer:*"} {
		if d := az.Decide(grant(g), ActionCreate, system); d.Allowed || !strings.Contains(d.Reason, "proxies") {
			t.Errorf("%s creating %s: %+v, want a refusal naming the proxy role", g, configsvc.SystemService, d)
		}
	}
}

func TestBootstrapOnlyOnce(t *testing.T) {
	ctx := context.Background()
	recs := newMemRecords()
	ts := NewTokens(recs, nil)
	const n = 8
	var wg sync.WaitGroup
	results := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			secret, created, err := ts.Bootstrap(ctx, time.Second, lifecycle.Sleep)
			if err != nil {
				t.Errorf("Bootstrap: %v", err)
			}
			if created {
				results <- secret
			}
		}()
	}
	wg.Wait()
	close(results)
	var got []string
	for s := range results {
		got = append(got, s)
	}
	if len(got) != 1 {
		t.Fatalf("%d servers created an admin token, want exactly 1", len(got))
	}
	p, err := ts.Authenticate(ctx, got[0])
	if err != nil || !p.IsAdmin() {
		t.Fatalf("bootstrap token: %+v, %v", p, err)
	}
	if _, created, _ := ts.Bootstrap(ctx, time.Second, lifecycle.Sleep); created {
		t.Fatal("a second bootstrap created another token")
	}
}

func TestBootstrapRecoversFromDeadWinner(t *testing.T) {
	ctx := context.Background()
	recs := newMemRecords()
	// A previous server appended its marker and died before creating a token.
	if _, err := recs.Append(ctx, BootstrapCollection, []byte(`{}`), 1000); err != nil {
		t.Fatal(err)
	}
	ts := NewTokens(recs, nil)
	var slept time.Duration
	sleep := func(context.Context, time.Duration) error { slept += 250 * time.Millisecond; return nil }
	secret, created, err := ts.Bootstrap(ctx, time.Second, sleep)
	if err != nil || !created {
		t.Fatalf("Bootstrap = %v, %v; want a token after the grace period", created, err)
	}
	if slept < time.Second {
		t.Errorf("waited %v, want the grace period of 1s", slept)
	}
	if _, err := ts.Authenticate(ctx, secret); err != nil {
		t.Fatal(err)
	}
}

func TestSessions(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	recs := newMemRecords()
	ts := NewTokens(recs, clk.Now)
	ss := NewSessions(recs, ts, SessionsConfig{TTL: time.Hour, Now: clk.Now})
	secret, tok := mustCreate(t, ts, "alice", "editor:orders")

	id, csrf, expires, p, err := ss.Open(ctx, secret)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if p.TokenID != tok.ID || !p.Session || !expires.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("Open = %+v, expires %v", p, expires)
	}
	if _, _, _, _, err := ss.Open(ctx, "slc_nope"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("Open(bad token) = %v", err)
	}
	for _, d := range recs.data[SessionsCollection] {
		if bytes.Contains(d, []byte(id)) || bytes.Contains(d, []byte(csrf)) || bytes.Contains(d, []byte(secret)) {
			t.Fatal("session record holds a secret")
		}
	}
	tests := []struct {
		name      string
		id, csrf  string
		check     bool
		wantErr   error
		advance   time.Duration
		revokeTok bool
	}{
		{name: "read without csrf", id: id, check: false},
		{name: "write with csrf", id: id, csrf: csrf, check: true},
		{name: "write without csrf", id: id, check: true, wantErr: ErrCSRF},
		{name: "write with wrong csrf", id: id, csrf: flipLast(csrf), check: true, wantErr: ErrCSRF},
		{name: "unknown session", id: SessionPrefix + csrf[4:], wantErr: ErrUnauthenticated},
		{name: "token as session", id: secret, wantErr: ErrUnauthenticated},
		{name: "expired", id: id, advance: time.Hour, wantErr: ErrUnauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk.Advance(tc.advance)
			t.Cleanup(func() { clk.Advance(-tc.advance) })
			_, err := ss.Authenticate(ctx, tc.id, tc.csrf, tc.check)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
	t.Run("revoked token ends session", func(t *testing.T) {
		id2, _, _, _, err := ss.Open(ctx, secret)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ts.Revoke(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := ss.Authenticate(ctx, id2, "", false); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("err = %v, want ErrUnauthenticated", err)
		}
	})
	t.Run("close and sweep", func(t *testing.T) {
		if err := ss.Close(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := ss.Authenticate(ctx, id, "", false); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("closed session still works: %v", err)
		}
		clk.Advance(2 * time.Hour)
		n, err := ss.Sweep(ctx)
		if err != nil || n != 1 || len(recs.data[SessionsCollection]) != 0 {
			t.Fatalf("Sweep = %d, %v; %d left", n, err, len(recs.data[SessionsCollection]))
		}
	})
}

func TestAuditQuery(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	a := NewAudit(newMemRecords(), 50)
	start := clk.Now()
	for i := 0; i < 60; i++ {
		svc := "orders"
		if i%2 == 1 {
			svc = "billing"
		}
		actor := "alice"
		if i%3 == 0 {
			actor = "bob"
		}
		if _, err := a.Record(ctx, Entry{Time: clk.Now(), Actor: actor, ActorID: actor + "-id", Action: "publish", Service: svc, Target: "service/" + svc, Outcome: OutcomeAllowed, Status: 200}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
	}
	tests := []struct {
		name    string
		q       Query
		want    int
		wantErr bool
	}{
		{name: "default limit, retention 50", q: Query{}, want: 50},
		{name: "limit", q: Query{Limit: 7}, want: 7},
		{name: "service", q: Query{Service: "orders", Limit: 1000}, want: 25},
		{name: "actor by id", q: Query{Actor: "bob-id", Limit: 1000}, want: 16},
		{name: "since", q: Query{Since: start.Add(55 * time.Minute), Limit: 1000}, want: 5},
		{name: "before", q: Query{Before: 20, Limit: 1000}, want: 9},
		{name: "limit too big", q: Query{Limit: MaxAuditLimit + 1}, wantErr: true},
		{name: "negative limit", q: Query{Limit: -1}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.Query(ctx, tc.q)
			if tc.wantErr {
				if !errors.Is(err, configsvc.ErrInvalid) {
					t.Fatalf("err = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil || len(got) != tc.want {
				t.Fatalf("got %d entries (%v), want %d", len(got), err, tc.want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Seq >= got[i-1].Seq {
					t.Fatalf("not newest first: %d then %d", got[i-1].Seq, got[i].Seq)
				}
			}
		})
	}
}

// TestAuditFiltersAndPages: action (name or glob), outcome and session
// filters; console sign-ins and sign-outs left out unless asked for; and
// NextPage walking past 1,000 entries, the audit log's and the sampled
// refusals' merged by time, each once.
func TestAuditFiltersAndPages(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	records := newMemRecords()
	a := NewAudit(records, 5000)
	actions := []string{"publish", "token.create", ActionSessionOpen, "token.revoke", ActionSessionClose, "rollback"}
	var written []Entry
	for i := range 1300 {
		e := Entry{Time: clk.Now(), Actor: "alice", Action: actions[i%len(actions)], Outcome: OutcomeAllowed, Status: 200}
		if i%10 == 9 {
			// A sampled refusal, in its own collection, as RefusalSampler writes it.
			e.Outcome, e.Status, e.Count = OutcomeRefused, 403, 1
			data, _ := json.Marshal(e)
			if _, err := records.Append(ctx, RefusalsCollection, data, RefusalKeep); err != nil {
				t.Fatal(err)
			}
		} else if _, err := a.Record(ctx, e); err != nil {
			t.Fatal(err)
		}
		written = append(written, e)
		clk.Advance(time.Second)
	}
	count := func(t *testing.T, q Query) (n int, sessions int) {
		t.Helper()
		seen := map[string]bool{}
		for pages := 0; ; pages++ {
			if pages > len(written) {
				t.Fatal("paging does not end")
			}
			page, err := a.Query(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range page {
				key := fmt.Sprint(e.Sampled, e.Seq)
				if seen[key] {
					t.Fatalf("entry %s twice", key)
				}
				seen[key] = true
				if i > 0 && page[i-1].Time.Before(e.Time) {
					t.Fatal("a page is not newest first")
				}
				if e.Action == ActionSessionOpen || e.Action == ActionSessionClose {
					sessions++
				}
			}
			n += len(page)
			next, ok := q.NextPage(page)
			if !ok {
				return n, sessions
			}
			q = next
		}
	}
	isSession := func(e Entry) bool { return e.Action == ActionSessionOpen || e.Action == ActionSessionClose }
	for _, tc := range []struct {
		name string
		q    Query
		keep func(Entry) bool // which of the written entries the query returns
	}{
		{"everything but sessions, 1,000 a page", Query{Limit: 1000}, func(e Entry) bool { return !isSession(e) }},
		{"with sessions, 7 a page", Query{Limit: 7, Sessions: true}, func(Entry) bool { return true }},
		{"sessions by action glob", Query{Limit: 100, Action: "session.*"}, isSession},
		{"one action", Query{Limit: 100, Action: "publish"}, func(e Entry) bool { return e.Action == "publish" }},
		{"refused only", Query{Limit: 50, Outcome: OutcomeRefused, Sessions: true}, func(e Entry) bool { return e.Outcome == OutcomeRefused }},
		{"allowed token actions", Query{Limit: 33, Action: "token.*", Outcome: OutcomeAllowed},
			func(e Entry) bool { return strings.HasPrefix(e.Action, "token.") && e.Outcome == OutcomeAllowed }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, wantSessions := 0, 0
			for _, e := range written {
				if tc.keep(e) {
					want++
					if isSession(e) {
						wantSessions++
					}
				}
			}
			if n, sn := count(t, tc.q); n != want || sn != wantSessions || want == 0 {
				t.Fatalf("%d entries (%d of sessions) over all pages, want %d (%d)", n, sn, want, wantSessions)
			}
		})
	}
}

// flipLast returns s with its last character changed, so it never equals s
// (replacing it with a fixed letter would not change an s ending in it).
func flipLast(s string) string {
	last := "A"
	if strings.HasSuffix(s, "A") {
		last = "B"
	}
	return s[:len(s)-1] + last
}

package access

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// TestAttackRefusalFloodSampled: every refused request used to append its
// own entry to the audit log, so a flood of anonymous requests pushed every
// real entry out of it. Refusals are sampled into their own collection now:
// the real entries stay, the writes per window are bounded, and the counts
// add up to the refusals.
func TestAttackRefusalFloodSampled(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	recs := newMemRecords()
	a := NewAudit(recs, 50)
	rs := NewRefusalSampler(a, SamplerConfig{Now: clk.Now, MaxEntries: 10, MaxClients: 5})
	if _, err := a.Record(ctx, Entry{Time: clk.Now(), Actor: "alice", ActorID: "alice-id", Action: "publish", Target: "service/orders", Service: "orders", Outcome: OutcomeAllowed, Status: 201}); err != nil {
		t.Fatal(err)
	}
	const perClient, clients = 100, 20
	for i := 0; i < perClient; i++ {
		for c := 0; c < clients; c++ {
			e := Entry{Time: clk.Now(), Actor: "anonymous", Action: "publish", Target: "service/orders", Outcome: OutcomeRefused, Status: 401, Reason: "authentication required", Client: fmt.Sprintf("10.0.0.%d", c)}
			if err := rs.Refused(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := len(recs.data[RefusalsCollection]); n > 10 {
		t.Fatalf("%d sampled entries written during the window, over its budget of 10", n)
	}
	clk.Advance(DefaultRefusalWindow)
	if err := rs.Flush(ctx, false); err != nil {
		t.Fatal(err)
	}
	if n := len(recs.data[RefusalsCollection]); n > 10 {
		t.Fatalf("%d sampled entries for one window, over its budget of 10", n)
	}
	got, err := a.Query(ctx, Query{Limit: MaxAuditLimit})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	real := 0
	for _, e := range got {
		if !e.Sampled {
			real++
			continue
		}
		if e.Outcome != OutcomeRefused || e.Count < 1 {
			t.Fatalf("sampled entry %+v: want refused with a count", e)
		}
		total += e.Count
	}
	if real != 1 {
		t.Fatalf("%d entries of allowed requests, want the 1 written before the flood", real)
	}
	if total != perClient*clients {
		t.Fatalf("sampled counts add up to %d, want %d refusals", total, perClient*clients)
	}
	if len(recs.data[AuditCollection]) != 1 {
		t.Fatalf("the audit log holds %d entries, want only the real one", len(recs.data[AuditCollection]))
	}
}

func TestRefusalSamplerOnePerClientAndWindow(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	recs := newMemRecords()
	a := NewAudit(recs, 0)
	rs := NewRefusalSampler(a, SamplerConfig{Now: clk.Now})
	refuse := func(client string) {
		t.Helper()
		if err := rs.Refused(ctx, Entry{Time: clk.Now(), Actor: "anonymous", Action: "token.create", Target: "token", Outcome: OutcomeRefused, Status: 401, Client: client}); err != nil {
			t.Fatal(err)
		}
	}
	refuse("10.0.0.1")
	got, err := a.Query(ctx, Query{})
	if err != nil || len(got) != 1 || got[0].Count != 1 || !got[0].Sampled {
		t.Fatalf("a single refusal is not in the audit at once: %+v, %v", got, err)
	}
	for i := 0; i < 9; i++ {
		refuse("10.0.0.1")
	}
	refuse("10.0.0.2")
	if n := len(recs.data[RefusalsCollection]); n != 2 {
		t.Fatalf("%d entries before the window ends, want one per client", n)
	}
	clk.Advance(DefaultRefusalWindow)
	refuse("10.0.0.1") // the next window's first refusal writes the last window's summary first
	got, err = a.Query(ctx, Query{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string][]int64{}
	for _, e := range got {
		counts[e.Client] = append(counts[e.Client], e.Count)
	}
	if fmt.Sprint(counts["10.0.0.1"]) != "[1 9 1]" || fmt.Sprint(counts["10.0.0.2"]) != "[1]" {
		t.Fatalf("counts newest first = %v, want 10.0.0.1 [1 9 1] and 10.0.0.2 [1]", counts)
	}
	if err := rs.Flush(ctx, true); err != nil {
		t.Fatal(err)
	}
}

func TestAuditQueryPagesBothSequences(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	recs := newMemRecords()
	a := NewAudit(recs, 0)
	rs := NewRefusalSampler(a, SamplerConfig{Now: clk.Now, Window: time.Second})
	for i := 0; i < 10; i++ {
		if _, err := a.Record(ctx, Entry{Time: clk.Now(), Actor: "alice", Action: "publish", Outcome: OutcomeAllowed, Status: 200}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
		if err := rs.Refused(ctx, Entry{Time: clk.Now(), Actor: "anonymous", Action: "publish", Outcome: OutcomeRefused, Status: 401, Client: "10.0.0.1"}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	var seen []Entry
	q := Query{Limit: 3}
	for page := 0; page < 20; page++ {
		got, err := a.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		for _, e := range got {
			if e.Sampled {
				q.BeforeSampled = e.Seq
			} else {
				q.Before = e.Seq
			}
		}
		seen = append(seen, got...)
	}
	if len(seen) != 20 {
		t.Fatalf("paging saw %d entries, want 20", len(seen))
	}
	for i := 1; i < len(seen); i++ {
		if seen[i].Time.After(seen[i-1].Time) {
			t.Fatalf("entry %d is newer than the one before it", i)
		}
		if seen[i].Sampled == seen[i-1].Sampled {
			t.Fatalf("entries %d and %d are both sampled=%v: the merge lost the interleaving", i-1, i, seen[i].Sampled)
		}
	}
}

func TestTokenExpiry(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	recs := newMemRecords()
	ts := NewTokens(recs, clk.Now)
	g, _ := ParseGrant("viewer:orders")
	secret, tok, err := ts.Create(ctx, "ci", []Grant{g}, "test", WithTTL(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(time.Hour); !tok.Expires.Equal(want) {
		t.Fatalf("Expires = %v, want %v", tok.Expires, want)
	}
	if _, _, err := ts.Create(ctx, "bad", []Grant{g}, "test", WithTTL(0)); !errors.Is(err, configsvc.ErrInvalid) {
		t.Fatalf("ttl 0: err = %v, want ErrInvalid", err)
	}
	ss := NewSessions(recs, ts, SessionsConfig{Now: clk.Now})
	_, _, expires, _, err := ss.Open(ctx, secret)
	if err != nil || !expires.Equal(tok.Expires) {
		t.Fatalf("session of an expiring token ends %v (%v), want with the token at %v", expires, err, tok.Expires)
	}
	if _, err := ts.Authenticate(ctx, secret); err != nil {
		t.Fatalf("fresh token refused: %v", err)
	}
	if n, err := ts.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("Sweep of a live token = %d, %v", n, err)
	}
	clk.Advance(time.Hour)
	if _, err := ts.Authenticate(ctx, secret); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("expired token: err = %v, want ErrUnauthenticated", err)
	}
	if n, err := ts.Sweep(ctx); err != nil || n != 1 || len(recs.data[TokensCollection]) != 0 {
		t.Fatalf("Sweep = %d, %v; %d tokens left", n, err, len(recs.data[TokensCollection]))
	}
	for _, s := range []string{"", "24h", "90m"} {
		if _, err := ParseTokenTTL(s); err != nil {
			t.Errorf("ParseTokenTTL(%q): %v", s, err)
		}
	}
	for _, s := range []string{"0s", "-1h", "tomorrow"} {
		if _, err := ParseTokenTTL(s); !errors.Is(err, configsvc.ErrInvalid) {
			t.Errorf("ParseTokenTTL(%q) = %v, want ErrInvalid", s, err)
		}
	}
}

// TestAttackSessionFlood: one token could open console sessions without
// bound, each a record every server reads; Open refuses past MaxPerToken
// with a count error naming the limit.
func TestAttackSessionFlood(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	recs := newMemRecords()
	ts := NewTokens(recs, clk.Now)
	ss := NewSessions(recs, ts, SessionsConfig{Now: clk.Now, MaxPerToken: 3})
	secret, _ := mustCreate(t, ts, "alice", "viewer:orders")
	other, _ := mustCreate(t, ts, "bob", "viewer:orders")
	for i := 0; i < 3; i++ {
		if _, _, _, _, err := ss.Open(ctx, secret); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	_, _, _, _, err := ss.Open(ctx, secret)
	var ce *configsvc.CountError
	if !errors.Is(err, configsvc.ErrTooMany) || !errors.As(err, &ce) || ce.Limit != 3 {
		t.Fatalf("fourth session: err = %v, want a CountError with limit 3", err)
	}
	if _, _, _, _, err := ss.Open(ctx, other); err != nil {
		t.Fatalf("another token's session: %v", err)
	}
	clk.Advance(DefaultSessionTTL)
	if _, _, _, _, err := ss.Open(ctx, secret); err != nil {
		t.Fatalf("expired sessions still count: %v", err)
	}
}

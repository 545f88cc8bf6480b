package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
)

// TestAuditQueryForConsole: the audit page's filters (action, outcome,
// actor), console sign-ins and sign-outs hidden unless asked for, and a
// cursor that walks every page once.
func TestAuditQueryForConsole(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *testEnv) {
		viewer := e.mustToken("viewer:orders")
		// Two console sessions open and close.
		for _, tok := range []string{e.admin, viewer} {
			resp := e.must(http.StatusOK, req{method: "POST", path: "/v1/session", body: map[string]string{"token": tok}})
			var sid, csrf string
			for _, ck := range (&http.Response{Header: resp.header}).Cookies() {
				switch ck.Name {
				case SessionCookie:
					sid = ck.Value
				case CSRFCookie:
					csrf = ck.Value
				}
			}
			e.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/session", header: map[string]string{
				"Cookie": SessionCookie + "=" + sid + "; " + CSRFCookie + "=" + csrf, CSRFHeader: csrf}})
			e.clock.Advance(time.Second)
		}
		for i := range 12 {
			e.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/svc-" + string(rune('a'+i)), token: e.admin})
			e.clock.Advance(time.Second)
		}
		e.must(http.StatusForbidden, req{method: "PUT", path: "/v1/services/nope", token: viewer})

		query := func(q string) api.AuditList {
			t.Helper()
			var out api.AuditList
			e.must(http.StatusOK, req{method: "GET", path: "/v1/audit?" + q, token: e.admin}).json(t, &out)
			return out
		}
		actions := func(l api.AuditList) string {
			var a []string
			for _, en := range l.Entries {
				a = append(a, en.Action)
			}
			return strings.Join(a, ",")
		}
		if got := actions(query("")); strings.Contains(got, "session.") || strings.Count(got, "create") != 13 {
			t.Fatalf("default audit = %s: want the 13 creates and no session events", got)
		}
		if got := actions(query("sessions=true")); strings.Count(got, "session.open") != 2 || strings.Count(got, "session.close") != 2 {
			t.Fatalf("with sessions = %s", got)
		}
		if got := actions(query("action=session.*")); got != "session.close,session.open,session.close,session.open" {
			t.Fatalf("action=session.* = %s", got)
		}
		if got := query("outcome=refused"); len(got.Entries) != 1 || got.Entries[0].Target != "service/nope" {
			t.Fatalf("outcome=refused = %+v", got.Entries)
		}
		if got := query("action=create&outcome=allowed&actor=bootstrap-admin"); len(got.Entries) != 12 {
			t.Fatalf("allowed creates by the admin = %d", len(got.Entries))
		}

		// Pages of 5 with sessions: 4 + 13 entries, each once, newest first.
		var seen []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("paging does not end")
			}
			v := url.Values{"limit": {"5"}, "sessions": {"true"}}
			if cursor != "" {
				v.Set("cursor", cursor)
			}
			page := query(v.Encode())
			for _, en := range page.Entries {
				seen = append(seen, en.Action+" "+en.Target+" "+en.Time.String())
			}
			if cursor = page.Next; cursor == "" {
				break
			}
		}
		if len(seen) != 17 || strings.Join(dedupe(seen), "|") != strings.Join(seen, "|") {
			t.Fatalf("pages held %d entries:\n%s", len(seen), strings.Join(seen, "\n"))
		}

		for _, bad := range []string{"outcome=maybe", "sessions=yes", "action=Token.Create", "cursor=!!", "cursor=eyJiIjoxfQ&before=3", "limit=1001"} {
			checkUserMessage(t, e.do(req{method: "GET", path: "/v1/audit?" + bad, token: e.admin}), http.StatusBadRequest)
		}
	})
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// TestAuditPagesPastAThousand: over HTTP, the cursor walks 1,150 entries
// (the audit log's and the sampled refusals', merged by time) in pages of
// the largest limit, 1,000, each entry once and newest first, with the
// filters kept from page to page; the last page has no next.
func TestAuditPagesPastAThousand(t *testing.T) {
	onBothStores(t, func(t *testing.T, e *testEnv) {
		ctx := context.Background()
		records := e.store.Records()
		log := access.NewAudit(records, 0)
		start := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
		const n = 1150
		for i := range n {
			en := access.Entry{Time: start.Add(time.Duration(i) * time.Second), Actor: "ci", Action: "publish",
				Target: fmt.Sprintf("service/svc-%04d", i), Outcome: access.OutcomeAllowed, Status: 200}
			switch {
			case i%10 == 9: // a sampled refusal, as the refusal sampler writes it
				en.Outcome, en.Status, en.Count = access.OutcomeRefused, 403, 1
				data, _ := json.Marshal(en)
				if _, err := records.Append(ctx, access.RefusalsCollection, data, access.RefusalKeep); err != nil {
					t.Fatal(err)
				}
			case i%50 == 7:
				en.Action = access.ActionSessionOpen
				fallthrough
			default:
				if _, err := log.Record(ctx, en); err != nil {
					t.Fatal(err)
				}
			}
		}
		walk := func(query url.Values) (targets []string, pages int) {
			t.Helper()
			cursor := ""
			for ; ; pages++ {
				if pages > 5 {
					t.Fatal("paging does not end")
				}
				v := maps.Clone(query)
				if cursor != "" {
					v.Set("cursor", cursor)
				}
				var page api.AuditList
				e.must(http.StatusOK, req{method: "GET", path: "/v1/audit?" + v.Encode(), token: e.admin}).json(t, &page)
				for i, en := range page.Entries {
					if i > 0 && page.Entries[i-1].Time.Before(en.Time) {
						t.Fatalf("page %d is not newest first at %d", pages, i)
					}
					targets = append(targets, en.Target)
				}
				if cursor = page.Next; cursor == "" {
					return targets, pages + 1
				}
			}
		}
		// Everything but the 23 sign-ins, newest first.
		var want []string
		for i := n - 1; i >= 0; i-- {
			if i%50 != 7 || i%10 == 9 {
				want = append(want, fmt.Sprintf("service/svc-%04d", i))
			}
		}
		got, pages := walk(url.Values{"limit": {"1000"}})
		if pages != 2 || !slices.Equal(got, want) {
			t.Fatalf("%d entries in %d pages, want %d in 2 (first %v)", len(got), pages, len(want), got[:min(3, len(got))])
		}
		// Filters hold across pages: the 115 refusals in pages of 100.
		refused, pages := walk(url.Values{"limit": {"100"}, "outcome": {"refused"}})
		if len(refused) != n/10 || pages != 2 || len(dedupe(refused)) != len(refused) {
			t.Fatalf("refused: %d entries in %d pages, want %d in 2", len(refused), pages, n/10)
		}
		// The old paging parameters and a cursor do not mix.
		first := e.must(http.StatusOK, req{method: "GET", path: "/v1/audit?limit=10", token: e.admin})
		var page api.AuditList
		first.json(t, &page)
		checkUserMessage(t, e.do(req{method: "GET", path: "/v1/audit?limit=10&before_sampled=5&cursor=" + page.Next, token: e.admin}),
			http.StatusBadRequest, "cursor")
	})
}

package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
)

// Limits of a summary page.
const (
	// DefaultSummaryLimit is the page size of a summary without ?limit.
	DefaultSummaryLimit = 100
	// MaxSummaryLimit is the largest ?limit of a summary.
	MaxSummaryLimit = 500
	// MaxSummaryFilter bounds ?q and ?owner of a summary, in bytes.
	MaxSummaryFilter = 128
)

// summaryQuery is a parsed summary request.
type summaryQuery struct {
	q        string // lower case
	glob     bool   // q holds '*' or '?'
	owner    string
	rejected bool
	sort     string
	limit    int
	after    *summaryCursor
}

// summaryCursor is the key of the last row of a page: the next page starts
// after it in the same order. It travels base64url-encoded JSON, which
// clients treat as opaque.
type summaryCursor struct {
	Sort    string `json:"s"`
	Name    string `json:"n"`
	Updated int64  `json:"u"` // UnixNano
}

func (k summaryCursor) encode() string {
	b, _ := json.Marshal(k)
	return base64.RawURLEncoding.EncodeToString(b)
}

// summaryRow is one service or group the caller may read and the query
// keeps, with its instance counts.
type summaryRow struct {
	v      refView
	users  []string
	counts api.InstanceCounts
}

func (r *summaryRow) key(sortBy string) summaryCursor {
	return summaryCursor{Sort: sortBy, Name: r.v.ref.Name, Updated: r.v.updated.UnixNano()}
}

// parseSummaryQuery reads the query of a summary request; it answers 400
// naming the parameter when one is bad.
func (s *Server) parseSummaryQuery(c *gin.Context) (summaryQuery, bool) {
	q := summaryQuery{q: strings.ToLower(c.Query("q")), owner: c.Query("owner"), sort: c.DefaultQuery("sort", api.SortName)}
	bad := func(field, value, msg string) (summaryQuery, bool) {
		s.fail(c, &configsvc.FieldError{Field: field, Value: configsvc.Truncate(value, 80), Msg: msg})
		return q, false
	}
	if len(q.q) > MaxSummaryFilter {
		return bad("q", q.q, "must be at most 128 bytes")
	}
	q.glob = strings.ContainsAny(q.q, "*?")
	if q.owner != "" {
		g := access.Grant{Role: access.RoleViewer, Pattern: q.owner}
		if g.Validate() != nil {
			return bad("owner", q.owner, "must be a name or a glob of 1-63 characters of a-z, 0-9, '-', '*' and '?' (like team-a-*)")
		}
	}
	switch raw := c.Query("rejected"); raw {
	case "", "false":
	case "true":
		q.rejected = true
	default:
		return bad("rejected", raw, "must be true or false")
	}
	switch q.sort {
	case api.SortName, api.SortUpdated, api.SortUpdatedNewest:
	default:
		return bad("sort", q.sort, "must be name, updated or -updated")
	}
	limit, ok := s.queryInt(c, "limit", 1, MaxSummaryLimit)
	if !ok {
		return q, false
	}
	q.limit = int(limit)
	if q.limit == 0 {
		q.limit = DefaultSummaryLimit
	}
	if raw := c.Query("cursor"); raw != "" {
		var k summaryCursor
		b, err := base64.RawURLEncoding.DecodeString(raw)
		if err != nil || json.Unmarshal(b, &k) != nil || k.Name == "" {
			return bad("cursor", raw, "is not a cursor of this API; start again from the first page")
		}
		if k.Sort != q.sort {
			return bad("cursor", raw, "belongs to a page sorted by "+k.Sort+"; ask with that sort, or start again from the first page")
		}
		q.after = &k
	}
	return q, true
}

// keeps reports whether the query's filters keep row.
func (q *summaryQuery) keeps(row *summaryRow) bool {
	name := row.v.ref.Name
	switch {
	case q.q != "" && q.glob && !configsvc.MatchGlob(q.q, name):
		return false
	case q.q != "" && !q.glob && !strings.Contains(name, q.q):
		return false
	case q.owner != "" && !configsvc.MatchGlob(q.owner, name):
		return false
	case q.rejected && row.counts.Rejected == 0:
		return false
	}
	return true
}

// less orders two rows by the query's sort; names break ties.
func (q *summaryQuery) less(a, b summaryCursor) bool {
	switch {
	case q.sort == api.SortUpdated && a.Updated != b.Updated:
		return a.Updated < b.Updated
	case q.sort == api.SortUpdatedNewest && a.Updated != b.Updated:
		return a.Updated > b.Updated
	}
	return a.Name < b.Name
}

// countInstances counts marks against the head revision rev.
func countInstances(marks []instanceMark, rev int64, into *api.InstanceCounts) {
	for _, m := range marks {
		into.Total++
		switch {
		case m.status == configsvc.StatusRejected:
			into.Rejected++
		case m.status == configsvc.StatusApplied && m.revision >= rev:
			into.Current++
		case m.status == configsvc.StatusApplied:
			into.Older++
		default:
			into.Starting++
		}
	}
}

// summaryPage answers GET /v1/summary/services and /v1/summary/shared: one
// page of the services (or groups) the caller may read, from the summary
// index, without a store round trip once the index is loaded.
func (s *Server) summaryPage(kind configsvc.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		q, ok := s.parseSummaryQuery(c)
		if !ok {
			return
		}
		rows, err := s.summaryRows(c, kind, &q)
		if err != nil {
			s.fail(c, err)
			return
		}
		sort.Slice(rows, func(i, j int) bool { return q.less(rows[i].key(q.sort), rows[j].key(q.sort)) })
		start := 0
		if q.after != nil {
			start = sort.Search(len(rows), func(i int) bool { return q.less(*q.after, rows[i].key(q.sort)) })
		}
		end := min(len(rows), start+q.limit)
		next := ""
		if end < len(rows) && end > start {
			next = rows[end-1].key(q.sort).encode()
		}
		page := rows[start:end]
		if kind == configsvc.KindGroup {
			out := api.GroupSummaryList{Items: make([]api.GroupSummary, len(page)), Next: next, Total: len(rows)}
			for i, r := range page {
				out.Items[i] = api.GroupSummary{Name: r.v.ref.Name, Revision: r.v.revision, Updated: wireTime(r.v.updated),
					Author: r.v.author, Files: r.v.files, Users: nonNilNames(r.users), Instances: r.counts}
			}
			c.JSON(http.StatusOK, out)
			return
		}
		out := api.ServiceSummaryList{Items: make([]api.ServiceSummary, len(page)), Next: next, Total: len(rows)}
		for i, r := range page {
			out.Items[i] = api.ServiceSummary{Name: r.v.ref.Name, Revision: r.v.revision, Updated: wireTime(r.v.updated),
				Author: r.v.author, Files: r.v.files, Links: nonNilNames(r.v.links), Instances: r.counts}
		}
		c.JSON(http.StatusOK, out)
	}
}

// summaryRows returns the rows of kind the caller may read and q keeps, in
// no order.
func (s *Server) summaryRows(c *gin.Context, kind configsvc.Kind, q *summaryQuery) ([]summaryRow, error) {
	ctx := c.Request.Context()
	views, err := s.index.views(ctx, kind)
	if err != nil {
		return nil, err
	}
	p := state(c).principal
	var users map[string][]string
	services := map[string]*refView{}
	if kind == configsvc.KindGroup {
		users = s.index.linksOf()
		svcs, err := s.index.views(ctx, configsvc.KindService)
		if err != nil {
			return nil, err
		}
		for i := range svcs {
			services[svcs[i].ref.Name] = &svcs[i]
		}
	}
	rows := make([]summaryRow, 0, len(views))
	for _, v := range views {
		row := summaryRow{v: v}
		t := access.Target{Ref: v.ref}
		if kind == configsvc.KindGroup {
			row.users = users[v.ref.Name]
			t.Users = row.users
			for _, u := range row.users {
				if sv := services[u]; sv != nil {
					countInstances(sv.insts, sv.revision, &row.counts)
				}
			}
		} else {
			countInstances(v.insts, v.revision, &row.counts)
		}
		if !s.authz.Decide(p, access.ActionRead, t).Allowed || !q.keeps(&row) {
			continue
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// wireTime is t as the API writes a time: RFC 3339 in UTC, "" when zero.
func wireTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func nonNilNames(names []string) []string {
	if names == nil {
		return []string{}
	}
	return names
}

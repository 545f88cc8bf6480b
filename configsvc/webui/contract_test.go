package webui_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// withContractEndpoints serves the admin API endpoints the console uses that
// the server may not have yet (issue 17: GET /v1/summary/services,
// /v1/summary/shared, /v1/search, /v1/services/{svc}/effective), as their
// contract describes them, straight from the store and without access
// checks. A request goes to the real server first; only its "no endpoint"
// 404 is replaced, so once the server has an endpoint the tests use it.
func withContractEndpoints(next http.Handler, st configsvc.Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stub := contractStub(r.URL.Path)
		if stub == nil || r.Method != http.MethodGet {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		if rec.Code != http.StatusNotFound || !bytes.Contains(rec.Body.Bytes(), []byte(`"no endpoint `)) {
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		v, err := stub(r.Context(), st, r)
		if errors.Is(err, errStubBadRequest) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":{"code":"invalid","message":"a parameter is out of its range"}}`))
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	})
}

// errStubBadRequest is a parameter console-api refuses with 400.
var errStubBadRequest = errors.New("bad request")

type stubFunc func(context.Context, configsvc.Store, *http.Request) (any, error)

func contractStub(p string) stubFunc {
	switch {
	case p == "/v1/summary/services":
		return func(ctx context.Context, st configsvc.Store, r *http.Request) (any, error) {
			return stubSummaries(ctx, st, r, configsvc.KindService)
		}
	case p == "/v1/summary/shared":
		return func(ctx context.Context, st configsvc.Store, r *http.Request) (any, error) {
			return stubSummaries(ctx, st, r, configsvc.KindGroup)
		}
	case p == "/v1/search":
		return stubSearch
	case strings.HasPrefix(p, "/v1/services/") && strings.HasSuffix(p, "/effective") && strings.Count(p, "/") == 4:
		return stubEffective
	}
	return nil
}

// The answers below mirror the api types of branch console-api
// (configsvc/api/console.go: InstanceCounts, ServiceSummary, GroupSummary,
// ServiceSummaryList, GroupSummaryList, SearchResult, SearchResults,
// EffectiveFile, EffectiveConfig) field for field, with the same JSON names,
// and its handlers' rules (configsvc/httpapi/summary.go, search.go,
// effective.go): defaults, limits, filters and orders.

type stubCounts struct {
	Total    int `json:"total"`
	Current  int `json:"current"`
	Older    int `json:"older"`
	Rejected int `json:"rejected"`
	Starting int `json:"starting"`
}

// count classifies like console-api's countInstances: rejected; applied at
// the head or newer is current; applied older is older; anything else is
// starting.
func (c *stubCounts) count(insts []configsvc.Instance, head int64) {
	for _, in := range insts {
		c.Total++
		switch {
		case in.Status == configsvc.StatusRejected:
			c.Rejected++
		case in.Status == configsvc.StatusApplied && in.Revision >= head:
			c.Current++
		case in.Status == configsvc.StatusApplied:
			c.Older++
		default:
			c.Starting++
		}
	}
}

// stubSummary is api.ServiceSummary (Links) or api.GroupSummary (Users).
type stubSummary struct {
	Name      string     `json:"name"`
	Revision  int64      `json:"revision"`
	Updated   string     `json:"updated"`
	Author    string     `json:"author"`
	Files     int        `json:"files"`
	Links     *[]string  `json:"links,omitempty"`
	Users     *[]string  `json:"users,omitempty"`
	Instances stubCounts `json:"instances"`
	updated   time.Time
}

// stubSummaryList is api.ServiceSummaryList and api.GroupSummaryList.
type stubSummaryList struct {
	Items []stubSummary `json:"items"`
	Next  string        `json:"next"`
	Total int           `json:"total"`
}

func nonNil(names []string) *[]string {
	if names == nil {
		names = []string{}
	}
	return &names
}

// wireTime writes a time as console-api does: RFC 3339 in UTC, "" when zero.
func wireTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func stubSummaries(ctx context.Context, st configsvc.Store, r *http.Request, kind configsvc.Kind) (any, error) {
	q := r.URL.Query()
	needle := strings.ToLower(q.Get("q"))
	sortBy := q.Get("sort")
	if sortBy == "" {
		sortBy = "name"
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit == 0 {
		limit = 100
	}
	if limit < 1 || limit > 500 || (sortBy != "name" && sortBy != "updated" && sortBy != "-updated") {
		return nil, errStubBadRequest
	}
	heads := map[string]configsvc.Head{}
	insts := map[string][]configsvc.Instance{}
	services, err := st.List(ctx, configsvc.KindService)
	if err != nil {
		return nil, err
	}
	for _, n := range services {
		if heads[n], err = st.Head(ctx, configsvc.Service(n)); err != nil {
			return nil, err
		}
		if insts[n], err = st.Instances(ctx, n); err != nil {
			return nil, err
		}
	}
	names := services
	if kind == configsvc.KindGroup {
		if names, err = st.List(ctx, kind); err != nil {
			return nil, err
		}
	}
	items := []stubSummary{}
	for _, n := range names {
		switch {
		case needle != "" && strings.ContainsAny(needle, "*?") && !configsvc.MatchGlob(needle, n):
			continue
		case needle != "" && !strings.ContainsAny(needle, "*?") && !strings.Contains(n, needle):
			continue
		case q.Get("owner") != "" && !configsvc.MatchGlob(q.Get("owner"), n):
			continue
		}
		h := heads[n]
		if kind == configsvc.KindGroup {
			if h, err = st.Head(ctx, configsvc.Ref{Kind: kind, Name: n}); err != nil {
				return nil, err
			}
		}
		it := stubSummary{Name: n, Revision: h.Revision, Updated: wireTime(h.Updated), Author: h.Author, Files: len(h.Files), updated: h.Updated}
		if kind == configsvc.KindGroup {
			users, err := st.Users(ctx, n)
			if err != nil {
				return nil, err
			}
			it.Users = nonNil(users)
			for _, u := range users {
				it.Instances.count(insts[u], heads[u].Revision)
			}
		} else {
			it.Links = nonNil(h.Links)
			it.Instances.count(insts[n], h.Revision)
		}
		if q.Get("rejected") == "true" && it.Instances.Rejected == 0 {
			continue
		}
		items = append(items, it)
	}
	sort.SliceStable(items, func(i, j int) bool {
		a, b := items[i], items[j]
		switch {
		case sortBy == "updated" && !a.updated.Equal(b.updated):
			return a.updated.Before(b.updated)
		case sortBy == "-updated" && !a.updated.Equal(b.updated):
			return a.updated.After(b.updated)
		}
		return a.Name < b.Name
	})
	// The cursor is opaque to the console; here it is the offset.
	from, _ := strconv.Atoi(q.Get("cursor"))
	from = min(max(from, 0), len(items))
	to := min(from+limit, len(items))
	next := ""
	if to < len(items) {
		next = strconv.Itoa(to)
	}
	return stubSummaryList{Items: items[from:to], Next: next, Total: len(items)}, nil
}

// stubSearchResult is api.SearchResult; stubSearchResults api.SearchResults.
type stubSearchResult struct {
	Ref  string `json:"ref"`
	File string `json:"file"`
	Line int    `json:"line"`
	Text string `json:"text"`
}

type stubSearchResults struct {
	Results   []stubSearchResult `json:"results"`
	Truncated bool               `json:"truncated"`
}

// stubSearch looks for q literally, ignoring case, in the head revisions:
// services, then groups, each by name, files by name, lines in order; at
// most limit results (default 50, at most 200).
func stubSearch(ctx context.Context, st configsvc.Store, r *http.Request) (any, error) {
	q := strings.ToLower(r.URL.Query().Get("q"))
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit == 0 {
		limit = 50
	}
	if q == "" || limit < 1 || limit > 200 {
		return nil, errStubBadRequest
	}
	out := stubSearchResults{Results: []stubSearchResult{}}
	for _, kind := range []configsvc.Kind{configsvc.KindService, configsvc.KindGroup} {
		names, err := st.List(ctx, kind)
		if err != nil {
			return nil, err
		}
		sort.Strings(names)
		for _, n := range names {
			snap, err := st.Snapshot(ctx, configsvc.Ref{Kind: kind, Name: n}, 0)
			if err != nil || snap.Revision == 0 {
				continue
			}
			files := make([]string, 0, len(snap.Files))
			for f := range snap.Files {
				files = append(files, f)
			}
			sort.Strings(files)
			for _, f := range files {
				sc := bufio.NewScanner(bytes.NewReader(snap.Files[f]))
				for line := 1; sc.Scan(); line++ {
					if !strings.Contains(strings.ToLower(sc.Text()), q) {
						continue
					}
					if len(out.Results) == limit {
						out.Truncated = true
						return out, nil
					}
					out.Results = append(out.Results, stubSearchResult{Ref: kind.String() + "/" + n, File: f, Line: line, Text: sc.Text()})
				}
			}
		}
	}
	return out, nil
}

// stubEffectiveFile is api.EffectiveFile; stubEffectiveConfig api.EffectiveConfig.
type stubEffectiveFile struct {
	Name         string           `json:"name"`
	Ref          string           `json:"ref"`
	File         string           `json:"file"`
	Revision     int64            `json:"revision"`
	FileRevision int64            `json:"file_revision"`
	Format       configsvc.Format `json:"format"`
	Content      string           `json:"content"`
}

type stubEffectiveConfig struct {
	Service  string              `json:"service"`
	Revision int64               `json:"revision"`
	Links    []string            `json:"links"`
	Files    []stubEffectiveFile `json:"files"`
}

func stubEffective(ctx context.Context, st configsvc.Store, r *http.Request) (any, error) {
	svc := strings.Split(r.URL.Path, "/")[3]
	ref := configsvc.Service(svc)
	h, err := st.Head(ctx, ref)
	if err != nil {
		return nil, err
	}
	out := stubEffectiveConfig{Service: svc, Revision: h.Revision, Links: append([]string{}, h.Links...), Files: []stubEffectiveFile{}}
	add := func(prefix string, ref configsvc.Ref, h configsvc.Head) error {
		if h.Revision == 0 {
			return nil
		}
		snap, err := st.Snapshot(ctx, ref, h.Revision)
		if err != nil {
			return err
		}
		for name, content := range snap.Files {
			out.Files = append(out.Files, stubEffectiveFile{Name: prefix + name, Ref: ref.String(), File: name, Revision: h.Revision,
				FileRevision: h.Files[name].Revision, Format: configsvc.FormatOf(name), Content: string(content)})
		}
		return nil
	}
	if err := add("", ref, h); err != nil {
		return nil, err
	}
	for _, g := range h.Links {
		gref := configsvc.Ref{Kind: configsvc.KindGroup, Name: g}
		gh, err := st.Head(ctx, gref)
		if err != nil {
			continue // unlinked and deleted since
		}
		if err := add(g+"/", gref, gh); err != nil {
			return nil, err
		}
	}
	sort.Slice(out.Files, func(i, j int) bool { return out.Files[i].Name < out.Files[j].Name })
	return out, nil
}

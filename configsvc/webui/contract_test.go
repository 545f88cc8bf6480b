package webui_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path"
	"sort"
	"strconv"
	"strings"

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
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	})
}

type stubFunc func(context.Context, configsvc.Store, *http.Request) (any, error)

func contractStub(p string) stubFunc {
	switch {
	case p == "/v1/summary/services":
		return func(ctx context.Context, st configsvc.Store, r *http.Request) (any, error) {
			return stubSummary(ctx, st, r, configsvc.KindService)
		}
	case p == "/v1/summary/shared":
		return func(ctx context.Context, st configsvc.Store, r *http.Request) (any, error) {
			return stubSummary(ctx, st, r, configsvc.KindGroup)
		}
	case p == "/v1/search":
		return stubSearch
	case strings.HasPrefix(p, "/v1/services/") && strings.HasSuffix(p, "/effective") && strings.Count(p, "/") == 4:
		return stubEffective
	}
	return nil
}

type stubCounts struct {
	Total    int `json:"total"`
	Current  int `json:"current"`
	Older    int `json:"older"`
	Rejected int `json:"rejected"`
	Starting int `json:"starting"`
}

type stubItem struct {
	Name      string      `json:"name"`
	Revision  int64       `json:"revision"`
	Updated   string      `json:"updated"`
	Author    string      `json:"author,omitempty"`
	Files     int         `json:"files"`
	Links     []string    `json:"links,omitempty"`
	Users     []string    `json:"users,omitempty"`
	Instances *stubCounts `json:"instances,omitempty"`
	updated   int64
}

func nameMatches(q, name string) bool {
	if q == "" {
		return true
	}
	if strings.ContainsAny(q, "*?") {
		ok, _ := path.Match(q, name)
		return ok
	}
	return strings.Contains(name, q)
}

func stubSummary(ctx context.Context, st configsvc.Store, r *http.Request, kind configsvc.Kind) (any, error) {
	q := r.URL.Query()
	names, err := st.List(ctx, kind)
	if err != nil {
		return nil, err
	}
	items := []stubItem{}
	for _, n := range names {
		if !nameMatches(q.Get("q"), n) {
			continue
		}
		ref := configsvc.Ref{Kind: kind, Name: n}
		h, err := st.Head(ctx, ref)
		if err != nil {
			continue
		}
		it := stubItem{Name: n, Revision: h.Revision, Updated: h.Updated.UTC().Format("2006-01-02T15:04:05Z07:00"), Author: h.Author, Files: len(h.Files), updated: h.Updated.UnixNano()}
		if kind == configsvc.KindGroup {
			if it.Users, err = st.Users(ctx, n); err != nil {
				return nil, err
			}
		} else {
			it.Links = h.Links
			insts, err := st.Instances(ctx, n)
			if err != nil {
				return nil, err
			}
			c := &stubCounts{Total: len(insts)}
			for _, in := range insts {
				switch {
				case in.Status == configsvc.StatusRejected:
					c.Rejected++
				case in.Status == configsvc.StatusStarting || in.Revision == 0:
					c.Starting++
				case in.Revision == h.Revision:
					c.Current++
				default:
					c.Older++
				}
			}
			it.Instances = c
			if q.Get("rejected") == "true" && c.Rejected == 0 {
				continue
			}
		}
		items = append(items, it)
	}
	if q.Get("sort") == "-updated" {
		sort.SliceStable(items, func(i, j int) bool { return items[i].updated > items[j].updated })
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	from, _ := strconv.Atoi(q.Get("cursor"))
	from = min(max(from, 0), len(items))
	to := min(from+limit, len(items))
	next := ""
	if to < len(items) {
		next = strconv.Itoa(to)
	}
	return map[string]any{"items": items[from:to], "next": next, "total": len(items)}, nil
}

func stubSearch(ctx context.Context, st configsvc.Store, r *http.Request) (any, error) {
	q := strings.ToLower(r.URL.Query().Get("q"))
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 {
		limit = 100
	}
	type result struct {
		Ref  string `json:"ref"`
		File string `json:"file"`
		Line int    `json:"line"`
		Text string `json:"text"`
	}
	results := []result{}
	truncated := false
	for _, kind := range []configsvc.Kind{configsvc.KindService, configsvc.KindGroup} {
		names, err := st.List(ctx, kind)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			snap, err := st.Snapshot(ctx, configsvc.Ref{Kind: kind, Name: n}, 0)
			if err != nil {
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
					if q == "" || !strings.Contains(strings.ToLower(sc.Text()), q) {
						continue
					}
					if len(results) == limit {
						truncated = true
						continue
					}
					results = append(results, result{Ref: kind.String() + "/" + n, File: f, Line: line, Text: sc.Text()})
				}
			}
		}
	}
	return map[string]any{"results": results, "truncated": truncated}, nil
}

func stubEffective(ctx context.Context, st configsvc.Store, r *http.Request) (any, error) {
	svc := strings.Split(r.URL.Path, "/")[3]
	snap, err := st.Snapshot(ctx, configsvc.Service(svc), 0)
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	for f, b := range snap.Files {
		files[f] = string(b)
	}
	head, err := st.Head(ctx, configsvc.Service(svc))
	if err != nil {
		return nil, err
	}
	for _, g := range head.Links {
		gs, err := st.Snapshot(ctx, configsvc.Ref{Kind: configsvc.KindGroup, Name: g}, 0)
		if err != nil {
			continue
		}
		for f, b := range gs.Files {
			files[g+"/"+f] = string(b)
		}
	}
	return map[string]any{"revision": snap.Revision, "files": files, "links": head.Links}, nil
}

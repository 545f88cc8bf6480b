package httpapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
)

// Limits of a search inside configs (GET /v1/search).
const (
	// DefaultSearchLimit is the result count of a search without ?limit.
	DefaultSearchLimit = 50
	// MaxSearchLimit is the largest ?limit of a search.
	MaxSearchLimit = 200
	// MaxSearchQuery bounds ?q of a search, in bytes.
	MaxSearchQuery = 200
	// MaxSearchBytes bounds the content one search scans; past it the
	// answer is truncated.
	MaxSearchBytes = 64 << 20
	// SearchTextLen bounds the text of a result: a longer line is cut
	// around the match.
	SearchTextLen = 200
	// searchShare is the share of the request timeout a search may spend
	// before it answers with what it found.
	searchShare = 0.8
	// searchParallel bounds the snapshot reads a search sends at once.
	searchParallel = 8
	// searchCacheBytes bounds the contents the search cache keeps.
	searchCacheBytes = 64 << 20
)

// snapshotCache keeps the content of services and groups at the revision
// a search last read, so that repeated searches read nothing from the
// store: a revision's content never changes, so an entry at the revision
// the summary index names is always right. It holds at most
// searchCacheBytes of content, dropping the oldest entries first. It is
// safe for concurrent use.
type snapshotCache struct {
	mu    sync.Mutex
	m     map[configsvc.Ref]cachedSnapshot
	order []configsvc.Ref // insertion order, for eviction
	size  int64
}

type cachedSnapshot struct {
	rev   int64
	files map[string][]byte
	size  int64
}

func newSnapshotCache() *snapshotCache {
	return &snapshotCache{m: map[configsvc.Ref]cachedSnapshot{}}
}

func (sc *snapshotCache) get(ref configsvc.Ref, rev int64) (map[string][]byte, bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	e, ok := sc.m[ref]
	if !ok || e.rev != rev {
		return nil, false
	}
	return e.files, true
}

func (sc *snapshotCache) put(ref configsvc.Ref, rev int64, files map[string][]byte) {
	var size int64
	for name, b := range files {
		size += int64(len(name) + len(b))
	}
	if size > searchCacheBytes/4 {
		return
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if old, ok := sc.m[ref]; ok {
		sc.size -= old.size
		sc.order = slices.DeleteFunc(sc.order, func(r configsvc.Ref) bool { return r == ref })
	}
	for sc.size+size > searchCacheBytes && len(sc.order) > 0 {
		sc.size -= sc.m[sc.order[0]].size
		delete(sc.m, sc.order[0])
		sc.order = sc.order[1:]
	}
	sc.m[ref] = cachedSnapshot{rev: rev, files: files, size: size}
	sc.order = append(sc.order, ref)
	sc.size += size
}

// searchable reports whether a search may look into file of ref. Every
// file may, today. Secret files (issue 18) must be left out here: a search
// never reads their plaintext.
func (s *Server) searchable(configsvc.Ref, string) bool { return true }

// search answers GET /v1/search?q=TEXT&limit=N: the lines of the head
// revisions of the services and groups the caller may read that contain
// TEXT, literally and ignoring case, services first, then groups, each by
// name, files by name, lines in order. It stops at limit results, after
// MaxSearchBytes of content, or at searchShare of the request timeout,
// and then says the answer is truncated.
func (s *Server) search(c *gin.Context) {
	text := c.Query("q")
	switch {
	case text == "":
		s.fail(c, &configsvc.FieldError{Field: "q", Msg: "must be the text to look for"})
		return
	case len(text) > MaxSearchQuery:
		s.fail(c, &configsvc.FieldError{Field: "q", Value: configsvc.Truncate(text, 40), Msg: "must be at most 200 bytes"})
		return
	case !utf8.ValidString(text):
		s.fail(c, &configsvc.FieldError{Field: "q", Msg: "must be UTF-8 text"})
		return
	}
	limit, ok := s.queryInt(c, "limit", 1, MaxSearchLimit)
	if !ok {
		return
	}
	if limit == 0 {
		limit = DefaultSearchLimit
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), time.Duration(float64(s.cfg.RequestTimeout)*searchShare))
	defer cancel()
	refs, err := s.readableRefs(ctx, state(c).principal)
	if err != nil {
		s.fail(c, err)
		return
	}
	sr := searcher{needle: []byte(strings.ToLower(text)), limit: int(limit), budget: MaxSearchBytes, out: api.SearchResults{Results: []api.SearchResult{}}}
	for batch := range slices.Chunk(refs, searchParallel) {
		snaps, errs := s.searchSnapshots(ctx, batch)
		for i, v := range batch {
			if err := errs[i]; err != nil {
				if isNotFound(err) || errors.Is(err, configsvc.ErrCompacted) {
					continue // deleted or moved on since the index saw it
				}
				if ctx.Err() == nil && len(sr.out.Results) == 0 && !errors.Is(err, context.DeadlineExceeded) {
					s.fail(c, err)
					return
				}
				sr.out.Truncated = true
				break
			}
			if !sr.scan(s, v.ref, snaps[i]) {
				break
			}
		}
		if sr.out.Truncated || ctx.Err() != nil {
			sr.out.Truncated = true
			break
		}
	}
	c.JSON(http.StatusOK, sr.out)
}

// readableRefs returns the services, then the groups, the principal may
// read that have a revision, each sorted by name, from the summary index.
func (s *Server) readableRefs(ctx context.Context, p *access.Principal) ([]refView, error) {
	var out []refView
	var users map[string][]string
	for _, kind := range []configsvc.Kind{configsvc.KindService, configsvc.KindGroup} {
		views, err := s.index.views(ctx, kind) // loads the index on first use
		if err != nil {
			return nil, err
		}
		if users == nil {
			users = s.index.linksOf()
		}
		slices.SortFunc(views, func(a, b refView) int { return strings.Compare(a.ref.Name, b.ref.Name) })
		for _, v := range views {
			t := access.Target{Ref: v.ref}
			if kind == configsvc.KindGroup {
				t.Users = users[v.ref.Name]
			}
			if v.revision > 0 && s.authz.Decide(p, access.ActionRead, t).Allowed {
				out = append(out, v)
			}
		}
	}
	return out, nil
}

// searchSnapshots returns the content of each of refs at its revision, from
// the cache or read in parallel.
func (s *Server) searchSnapshots(ctx context.Context, refs []refView) ([]map[string][]byte, []error) {
	snaps, errs := make([]map[string][]byte, len(refs)), make([]error, len(refs))
	var g errgroup.Group
	for i, v := range refs {
		if files, ok := s.snapshots.get(v.ref, v.revision); ok {
			snaps[i] = files
			continue
		}
		g.Go(func() error {
			// The cache is shared by every caller: it holds secret files
			// as placeholders, whoever's search filled it (search never
			// finds secret values).
			sn, err := s.cfg.Store.Snapshot(configsvc.WithSecretViewAll(ctx, configsvc.SecretRedacted), v.ref, v.revision)
			if err == nil {
				snaps[i] = sn.Files
				s.snapshots.put(v.ref, v.revision, sn.Files)
			}
			errs[i] = err
			return nil
		})
	}
	_ = g.Wait()
	return snaps, errs
}

// searcher collects the results of one search.
type searcher struct {
	needle  []byte // lower case
	limit   int
	budget  int64 // content bytes it may scan: MaxSearchBytes
	scanned int64
	out     api.SearchResults
}

// scan looks for the needle in the files of ref, by name. It reports
// false when the search must stop (the result limit or the byte budget
// reached; Truncated is then set). A file that would take the scanned
// bytes past the budget is not scanned.
func (sr *searcher) scan(s *Server, ref configsvc.Ref, files map[string][]byte) bool {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if !s.searchable(ref, name) {
			continue
		}
		content := files[name]
		if sr.scanned+int64(len(content)) > sr.budget {
			sr.out.Truncated = true
			return false
		}
		sr.scanned += int64(len(content))
		if !sr.grep(ref, name, content) {
			return false
		}
	}
	return true
}

// grep adds the lines of content that hold the needle. It reports false
// when the result limit is passed.
func (sr *searcher) grep(ref configsvc.Ref, file string, content []byte) bool {
	lower := bytes.ToLower(content)
	aligned := len(lower) == len(content) // no rune changed its length: offsets agree
	if aligned && !bytes.Contains(lower, sr.needle) {
		return true
	}
	for n, start := 1, 0; start < len(content); n++ {
		end := bytes.IndexByte(content[start:], '\n')
		if end < 0 {
			end = len(content)
		} else {
			end += start
		}
		line := content[start:end]
		var at int
		if aligned {
			at = bytes.Index(lower[start:end], sr.needle)
		} else {
			at = bytes.Index(bytes.ToLower(line), sr.needle)
		}
		if at >= 0 {
			if len(sr.out.Results) == sr.limit {
				sr.out.Truncated = true
				return false
			}
			sr.out.Results = append(sr.out.Results, api.SearchResult{Ref: ref.String(), File: file, Line: n, Text: excerpt(line, at)})
		}
		start = end + 1
	}
	return true
}

// excerpt returns line (without a trailing CR) as text of at most
// SearchTextLen bytes: a longer line is cut around at, where the match
// starts, and "…" marks each cut.
func excerpt(line []byte, at int) string {
	line = bytes.TrimSuffix(line, []byte("\r"))
	start, end := 0, len(line)
	if len(line) > SearchTextLen {
		start = max(0, min(at-SearchTextLen/4, len(line)-SearchTextLen))
		end = start + SearchTextLen
		for start > 0 && !utf8.RuneStart(line[start]) {
			start--
		}
		for end < len(line) && !utf8.RuneStart(line[end]) {
			end--
		}
	}
	out := strings.ToValidUTF8(string(line[start:end]), "\uFFFD")
	if start > 0 {
		out = "…" + out
	}
	if end < len(line) {
		out += "…"
	}
	return out
}

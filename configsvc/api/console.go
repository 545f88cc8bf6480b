package api

import (
	"context"
	"net/url"
	"strconv"

	"github.com/sluicehq/sluice/configsvc"
)

// The bodies of the endpoints the console's pages read in one request
// each: the summaries of the Services and Shared pages, the search inside
// configs and a service's effective config.

// InstanceCounts counts the live instances of a service by what they run,
// against the service's head revision. The four kinds do not overlap:
// Total = Current + Older + Rejected + Starting. For a shared group they
// are the sums over the services that link it.
type InstanceCounts struct {
	Total int `json:"total"`
	// Current applied the head revision (or a newer one the summary has
	// not seen yet).
	Current int `json:"current"`
	// Older applied an older revision and refused nothing.
	Older int `json:"older"`
	// Rejected refused a revision (they run the last one they accepted).
	Rejected int `json:"rejected"`
	// Starting have not applied any revision yet.
	Starting int `json:"starting"`
}

// ServiceSummary is one row of the Services page: a service's head, its
// linked groups and its instances.
type ServiceSummary struct {
	Name     string `json:"name"`
	Revision int64  `json:"revision"`
	// Updated is the time of the newest revision (or of the creation),
	// RFC 3339 in UTC; empty when the store kept none.
	Updated   string         `json:"updated"`
	Author    string         `json:"author"`
	Files     int            `json:"files"`
	Links     []string       `json:"links"`
	Instances InstanceCounts `json:"instances"`
}

// GroupSummary is one row of the Shared page: a group's head, the services
// that link it, and their instances.
type GroupSummary struct {
	Name      string         `json:"name"`
	Revision  int64          `json:"revision"`
	Updated   string         `json:"updated"`
	Author    string         `json:"author"`
	Files     int            `json:"files"`
	Users     []string       `json:"users"`
	Instances InstanceCounts `json:"instances"`
}

// ServiceSummaryList is the answer of GET /v1/summary/services: one page
// of the services the caller may read. Next is the cursor of the next
// page ("" after the last); Total counts every service the query matches.
type ServiceSummaryList struct {
	Items []ServiceSummary `json:"items"`
	Next  string           `json:"next"`
	Total int              `json:"total"`
}

// GroupSummaryList is the answer of GET /v1/summary/shared.
type GroupSummaryList struct {
	Items []GroupSummary `json:"items"`
	Next  string         `json:"next"`
	Total int            `json:"total"`
}

// The sort orders of a summary.
const (
	SortName          = "name"     // by name (the default)
	SortUpdated       = "updated"  // oldest change first
	SortUpdatedNewest = "-updated" // newest change first
)

// SummaryQuery selects and orders a page of a summary. Zero fields do not
// filter; see docs/api.md.
type SummaryQuery struct {
	// Q filters names: a substring, or a glob when it holds '*' or '?'.
	Q string
	// Owner is a grant-style glob over names ("team-a-*").
	Owner string
	// Rejected keeps only what has at least one rejected instance.
	Rejected bool
	// Sort is SortName (default), SortUpdated or SortUpdatedNewest.
	Sort string
	// Limit is the page size, 1..500; 0 means the server's default, 100.
	Limit int
	// Cursor is the Next of the previous page.
	Cursor string
}

func (q SummaryQuery) values() url.Values {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("q", q.Q)
	set("owner", q.Owner)
	set("sort", q.Sort)
	set("cursor", q.Cursor)
	if q.Rejected {
		v.Set("rejected", "true")
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	return v
}

// ServiceSummaries returns one page of the services the caller may read,
// with their heads, links and instance counts, in one request.
func (c *Client) ServiceSummaries(ctx context.Context, q SummaryQuery) (ServiceSummaryList, error) {
	var out ServiceSummaryList
	_, err := c.get(ctx, "/v1/summary/services", q.values(), &out)
	return out, err
}

// GroupSummaries returns one page of the shared groups the caller may
// read, with their heads, users and their users' instance counts.
func (c *Client) GroupSummaries(ctx context.Context, q SummaryQuery) (GroupSummaryList, error) {
	var out GroupSummaryList
	_, err := c.get(ctx, "/v1/summary/shared", q.values(), &out)
	return out, err
}

// SearchResult is one line that matched a search.
type SearchResult struct {
	// Ref is "service/NAME" or "group/NAME".
	Ref  string `json:"ref"`
	File string `json:"file"`
	// Line is 1-based.
	Line int `json:"line"`
	// Text is the line, cut around the match when it is long ("…" marks
	// the cuts).
	Text string `json:"text"`
}

// SearchResults is the answer of GET /v1/search. Truncated reports that
// the search stopped before it had looked everywhere: at the result
// limit, the bytes it may scan, or the request's deadline.
type SearchResults struct {
	Results   []SearchResult `json:"results"`
	Truncated bool           `json:"truncated"`
}

// Search looks for text (literally, ignoring case) in the head revision of
// every service and group the caller may read, and returns at most limit
// matching lines (0: the server's default of 50; at most 200).
func (c *Client) Search(ctx context.Context, text string, limit int) (SearchResults, error) {
	v := url.Values{"q": {text}}
	if limit > 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	var out SearchResults
	_, err := c.get(ctx, "/v1/search", v, &out)
	return out, err
}

// EffectiveFile is one file of a service's effective config.
type EffectiveFile struct {
	// Name is the name the SDK sees: "db.yaml" for the service's own file,
	// "redis-common/redis.yaml" for a linked group's.
	Name string `json:"name"`
	// Ref is where the file lives: "service/orders" or "group/redis-common".
	Ref string `json:"ref"`
	// File is its name inside Ref.
	File string `json:"file"`
	// Revision is the revision of Ref the content is at (its head).
	Revision int64 `json:"revision"`
	// FileRevision is the revision of Ref that last changed the file.
	FileRevision int64            `json:"file_revision"`
	Format       configsvc.Format `json:"format"`
	Content      string           `json:"content"`
}

// EffectiveConfig is the answer of GET /v1/services/{svc}/effective: the
// files of the service and of every group it links, as its SDK sees them,
// sorted by name.
type EffectiveConfig struct {
	Service  string          `json:"service"`
	Revision int64           `json:"revision"`
	Links    []string        `json:"links"`
	Files    []EffectiveFile `json:"files"`
}

// Effective returns the effective config of service svc: its files and its
// linked groups' files, with revisions and content, in one request.
func (c *Client) Effective(ctx context.Context, svc string) (EffectiveConfig, error) {
	var out EffectiveConfig
	_, err := c.get(ctx, refPath(configsvc.Service(svc), "effective"), nil, &out)
	return out, err
}

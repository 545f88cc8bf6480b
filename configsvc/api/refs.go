package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/sluicehq/sluice/configsvc"
)

// List returns the names of the services (kind KindService) or shared
// groups (KindGroup) the caller may read, sorted.
func (c *Client) List(ctx context.Context, kind configsvc.Kind) ([]string, error) {
	if kind == configsvc.KindGroup {
		var out GroupList
		_, err := c.get(ctx, "/v1/shared", nil, &out)
		return out.Groups, err
	}
	var out ServiceList
	_, err := c.get(ctx, "/v1/services", nil, &out)
	return out.Services, err
}

// Head returns the current head of a service or group. ErrNotFound if it
// does not exist.
func (c *Client) Head(ctx context.Context, ref configsvc.Ref) (configsvc.Head, error) {
	var h Head
	if _, err := c.get(ctx, refPath(ref), nil, &h); err != nil {
		return configsvc.Head{}, err
	}
	return h.withRef(ref), nil
}

// withRef returns h as a configsvc.Head of ref (a server too old or too
// odd to name it still answers for the ref asked).
func (h Head) withRef(ref configsvc.Ref) configsvc.Head {
	out := h.Domain()
	out.Ref = ref
	return out
}

// Create creates an empty service or group (revision 0) and returns its
// head; created is false when it existed already (creating is idempotent).
func (c *Client) Create(ctx context.Context, ref configsvc.Ref) (head configsvc.Head, created bool, err error) {
	var h Head
	resp, err := c.doJSON(ctx, request{method: http.MethodPut, path: refPath(ref)}, nil, &h)
	if err != nil {
		return configsvc.Head{}, false, err
	}
	return h.withRef(ref), resp.status == http.StatusCreated, nil
}

// Delete removes a service or group with its whole history (admins only).
// ErrConflict for a group services still link to.
func (c *Client) Delete(ctx context.Context, ref configsvc.Ref) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: refPath(ref)})
	return err
}

// FileContent is a config file as GET …/files/{file} answers it.
type FileContent struct {
	// Content is the file's content, exactly as stored.
	Content []byte
	// Revision is the revision of the service or group the content is at
	// (its ETag): the If-Match of an edit based on it.
	Revision int64
	// FileRevision is the revision that last changed the file; 0 when the
	// server did not say.
	FileRevision int64
}

// File returns a config file at revision rev (0: the head). ErrNotFound
// if the file does not exist there; ErrCompacted if rev was pruned.
func (c *Client) File(ctx context.Context, ref configsvc.Ref, name string, rev int64) (FileContent, error) {
	req := request{method: http.MethodGet, path: refPath(ref, "files", name), accept: "*/*"}
	if rev > 0 {
		req.query = url.Values{"revision": {strconv.FormatInt(rev, 10)}}
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return FileContent{}, err
	}
	fr, _ := strconv.ParseInt(resp.header.Get("X-Sluice-File-Revision"), 10, 64)
	return FileContent{Content: resp.body, Revision: resp.revision(), FileRevision: fr}, nil
}

// WriteOption modifies one write (PutFile, DeleteFile, Publish, Rollback).
type WriteOption func(*writeOptions)

type writeOptions struct {
	message   string
	ifMatch   int64
	hasMatch  bool
	key       string
	emergency string
}

// IfMatch makes the write conditional: it is refused with ErrPrecondition
// (HTTP 412) unless rev is still the head revision. IfMatch(0) means
// "only if nothing was published yet".
func IfMatch(rev int64) WriteOption {
	return func(o *writeOptions) { o.ifMatch, o.hasMatch = rev, true }
}

// WithIdempotencyKey sends key as the write's Idempotency-Key instead of
// a new random one: a caller that may repeat the write itself (a script
// run again after a failure) passes the same key each time, and the
// server answers a repeat within 24 h with the first answer.
func WithIdempotencyKey(key string) WriteOption {
	return func(o *writeOptions) { o.key = key }
}

// WithMessage sets the revision message of PutFile and DeleteFile (one
// line; sent as X-Sluice-Message). Publish and Rollback carry theirs in
// the request.
func WithMessage(msg string) WriteOption {
	return func(o *writeOptions) { o.message = msg }
}

func writeHeader(opts []WriteOption) http.Header {
	var o writeOptions
	for _, f := range opts {
		f(&o)
	}
	h := http.Header{}
	if o.message != "" {
		h.Set("X-Sluice-Message", o.message)
	}
	if o.hasMatch {
		h.Set("If-Match", strconv.Quote(strconv.FormatInt(o.ifMatch, 10)))
	}
	if o.key != "" {
		h.Set(HeaderIdempotencyKey, o.key)
	}
	if o.emergency != "" {
		h.Set(EmergencyHeader, o.emergency)
	}
	return h
}

// published decodes the revision a write created. Its number comes from
// the body, else from the X-Sluice-Revision or ETag header. An answer 202
// (an approval policy made the write a change request) is a *Pending
// error.
func published(resp *response) (configsvc.Revision, error) {
	if p := pending(resp); p != nil {
		return configsvc.Revision{}, p
	}
	var r Revision
	_ = json.Unmarshal(resp.body, &r)
	if r.Revision == 0 {
		r.Revision = resp.revision()
	}
	return r.Domain(), nil
}

// PutFile publishes one file as a new revision and returns it (changes
// without content). The server validates the content for the file's format
// and its JSON Schema (ErrInvalid, with the line and column in the
// *Error's details, and every schema violation in its Violations). Under
// an approval policy the error is a *Pending holding the change request
// created (ErrPending); the same holds for DeleteFile, Publish and
// Rollback.
func (c *Client) PutFile(ctx context.Context, ref configsvc.Ref, name string, content []byte, opts ...WriteOption) (configsvc.Revision, error) {
	if content == nil {
		content = []byte{}
	}
	resp, err := c.do(ctx, request{method: http.MethodPut, path: refPath(ref, "files", name), body: content,
		contentType: "application/octet-stream", header: writeHeader(opts)})
	if err != nil {
		return configsvc.Revision{}, err
	}
	return published(resp)
}

// DeleteFile publishes a revision that deletes one file and returns it.
func (c *Client) DeleteFile(ctx context.Context, ref configsvc.Ref, name string, opts ...WriteOption) (configsvc.Revision, error) {
	resp, err := c.do(ctx, request{method: http.MethodDelete, path: refPath(ref, "files", name), header: writeHeader(opts)})
	if err != nil {
		return configsvc.Revision{}, err
	}
	return published(resp)
}

// Publish publishes several changes as one revision, atomically, and
// returns it (changes without content). ErrConflict when
// req.BaseRevision is no longer the head.
func (c *Client) Publish(ctx context.Context, ref configsvc.Ref, req PublishRequest, opts ...WriteOption) (configsvc.Revision, error) {
	resp, err := c.doJSON(ctx, request{method: http.MethodPost, path: refPath(ref, "revisions"), header: writeHeader(opts)}, req, nil)
	if err != nil {
		return configsvc.Revision{}, err
	}
	return published(resp)
}

// Rollback publishes a revision whose content equals req.ToRevision (for
// every file, or req.Files) and returns it.
func (c *Client) Rollback(ctx context.Context, ref configsvc.Ref, req RollbackRequest, opts ...WriteOption) (configsvc.Revision, error) {
	resp, err := c.doJSON(ctx, request{method: http.MethodPost, path: refPath(ref, "rollback"), header: writeHeader(opts)}, req, nil)
	if err != nil {
		return configsvc.Revision{}, err
	}
	return published(resp)
}

// Revisions lists revisions newest first, without content: at most limit
// (0: the server's default of 50; it caps at 1000) older than before (0:
// from the head).
func (c *Client) Revisions(ctx context.Context, ref configsvc.Ref, before int64, limit int) ([]configsvc.Revision, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	var out RevisionList
	if _, err := c.get(ctx, refPath(ref, "revisions"), q, &out); err != nil {
		return nil, err
	}
	revs := make([]configsvc.Revision, len(out.Revisions))
	for i, r := range out.Revisions {
		revs[i] = r.Domain()
	}
	return revs, nil
}

// Revision returns revision n with the content of its changes.
// ErrNotFound if it does not exist yet; ErrCompacted if it was pruned.
func (c *Client) Revision(ctx context.Context, ref configsvc.Ref, n int64) (configsvc.Revision, error) {
	var r Revision
	if _, err := c.get(ctx, refPath(ref, "revisions", strconv.FormatInt(n, 10)), nil, &r); err != nil {
		return configsvc.Revision{}, err
	}
	return r.Domain(), nil
}

// Diff compares revisions from and to; a negative to means the head, a
// negative from means the revision before to. Revision 0 is the empty
// state before the first publish.
func (c *Client) Diff(ctx context.Context, ref configsvc.Ref, from, to int64) (Diff, error) {
	q := url.Values{}
	if from >= 0 {
		q.Set("from", strconv.FormatInt(from, 10))
	}
	if to >= 0 {
		q.Set("to", strconv.FormatInt(to, 10))
	}
	var d Diff
	_, err := c.get(ctx, refPath(ref, "diff"), q, &d)
	return d, err
}

// Snapshot returns the content of every file at revision rev (0: the
// head). Same errors as File.
func (c *Client) Snapshot(ctx context.Context, ref configsvc.Ref, rev int64) (configsvc.Snapshot, error) {
	var q url.Values
	if rev > 0 {
		q = url.Values{"revision": {strconv.FormatInt(rev, 10)}}
	}
	var s Snapshot
	if _, err := c.get(ctx, refPath(ref, "snapshot"), q, &s); err != nil {
		return configsvc.Snapshot{}, err
	}
	return s.Domain(ref), nil
}

// Link makes service svc use shared group group (both directions are
// recorded; linking twice is not an error) and returns the service's
// links. ErrNotFound if either does not exist.
func (c *Client) Link(ctx context.Context, svc, group string) ([]string, error) {
	return c.link(ctx, http.MethodPut, svc, group)
}

// Unlink removes the link and returns the service's links. ErrNotFound if
// it did not exist.
func (c *Client) Unlink(ctx context.Context, svc, group string) ([]string, error) {
	return c.link(ctx, http.MethodDelete, svc, group)
}

func (c *Client) link(ctx context.Context, method, svc, group string) ([]string, error) {
	var out Links
	_, err := c.doJSON(ctx, request{method: method, path: refPath(configsvc.Service(svc), "links", group)}, nil, &out)
	return out.Links, err
}

// Users returns the services linked to group, sorted.
func (c *Client) Users(ctx context.Context, group string) ([]string, error) {
	var out Users
	_, err := c.get(ctx, refPath(configsvc.Group(group), "users"), nil, &out)
	return out.Services, err
}

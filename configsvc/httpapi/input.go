package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// Body size limits. A body over its limit is refused with 413 naming it.
const (
	// MaxJSONBody bounds small JSON bodies (tokens, pins, links, sessions,
	// instances, rollbacks).
	MaxJSONBody = 64 << 10
	// MaxPublishBody bounds a multi-file publish: the 900 KiB changeset
	// limit plus room for JSON string escaping.
	MaxPublishBody = 2 << 20
	// MaxListLimit is the largest limit a listing accepts.
	MaxListLimit = configsvc.MaxPageSize
)

// param returns path parameter name decoded exactly once. The router
// matches on the escaped path, so "%2F" arrives here as "%2F" and becomes
// "/", which every name rule refuses; "%252F" becomes "%2F", also refused.
func param(c *gin.Context, name string) (string, error) {
	raw := c.Param(name)
	v, err := url.PathUnescape(raw)
	if err != nil {
		return "", &configsvc.FieldError{Field: name, Value: raw, Msg: "is not a valid URL path segment"}
	}
	return v, nil
}

// refParam returns the validated service or group named in the path, and
// records it as the audit target.
func (s *Server) refParam(c *gin.Context, kind configsvc.Kind) (configsvc.Ref, bool) {
	name, err := param(c, paramOf(kind))
	if err == nil {
		ref := configsvc.Ref{Kind: kind, Name: name}
		if err = ref.Validate(); err == nil {
			st := state(c)
			st.target, st.service = ref.String(), ref.Name
			return ref, true
		}
	}
	s.fail(c, err)
	return configsvc.Ref{}, false
}

// fileParam returns the validated file name in the path and extends the
// audit target with it.
func (s *Server) fileParam(c *gin.Context, ref configsvc.Ref) (string, bool) {
	name, err := param(c, "file")
	if err == nil {
		if err = configsvc.ValidateFileName(name); err == nil {
			state(c).target = ref.String() + "/" + name
			return name, true
		}
	}
	s.fail(c, err)
	return "", false
}

// intParam is an optional integer query parameter.
type intParam struct {
	value int64 // 0 when not given
	given bool
}

// queryInt parses an optional integer query parameter within [min, max];
// it is 0 when not given. ok is false (and the request answered 400) when
// it is malformed or out of range.
func (s *Server) queryInt(c *gin.Context, name string, min, max int64) (v int64, ok bool) {
	p, ok := s.queryIntParam(c, name, min, max)
	return p.value, ok
}

// queryIntParam is queryInt for a caller that needs to know whether the
// parameter was given.
func (s *Server) queryIntParam(c *gin.Context, name string, min, max int64) (p intParam, ok bool) {
	raw, given := c.GetQuery(name)
	if !given {
		return intParam{}, true
	}
	v, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || v < min || v > max {
		s.fail(c, &configsvc.FieldError{Field: name, Value: raw, Msg: fmt.Sprintf("must be an integer from %d to %d", min, max)})
		return intParam{given: true}, false
	}
	return intParam{value: v, given: true}, true
}

// The conditional request headers of RFC 9110 §13.1 the API honours. Every
// route that takes them evaluates them here: writes through checkIfMatch,
// reads through notModified.
const (
	headerIfMatch     = "If-Match"
	headerIfNoneMatch = "If-None-Match"
)

// entityTag is one entity-tag of a conditional header: the revision it
// names, and whether it is weak (W/"N").
type entityTag struct {
	rev  int64
	weak bool
}

// etagCond is a parsed If-Match or If-None-Match header: absent, "*", or a
// list of entity-tags.
type etagCond struct {
	present bool
	any     bool // "*"
	tags    []entityTag
}

// parseETagCond parses the header field of c's request (several lines are
// one comma-separated list). Our ETags are "<revision>"; W/"<revision>"
// and, for hand-written requests, a bare <revision> are read too. Anything
// else is a *configsvc.FieldError (400) naming the header.
func parseETagCond(c *gin.Context, field string) (etagCond, error) {
	vals := c.Request.Header.Values(field)
	if len(vals) == 0 {
		return etagCond{}, nil
	}
	raw := strings.TrimSpace(strings.Join(vals, ","))
	if raw == "*" {
		return etagCond{present: true, any: true}, nil
	}
	bad := &configsvc.FieldError{Field: field, Value: configsvc.Truncate(raw, 80), Msg: `must be "*" or ETags "<revision>" as returned by a GET`}
	cond := etagCond{present: true}
	for _, part := range strings.Split(raw, ",") {
		t := strings.TrimSpace(part)
		if t == "" {
			continue // the list syntax allows empty elements
		}
		weak := strings.HasPrefix(t, "W/")
		t = strings.TrimPrefix(t, "W/")
		if len(t) >= 2 && t[0] == '"' && t[len(t)-1] == '"' {
			t = t[1 : len(t)-1]
		} else if weak {
			return etagCond{}, bad
		}
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil || n < 0 {
			return etagCond{}, bad
		}
		cond.tags = append(cond.tags, entityTag{rev: n, weak: weak})
	}
	if len(cond.tags) == 0 {
		return etagCond{}, bad
	}
	return cond, nil
}

// matches reports whether a present condition holds for the target whose
// ETag is "<rev>": "*" when the target exists; a tag when it names rev.
// strong selects RFC 9110's strong comparison (If-Match), under which a
// weak tag never matches; If-None-Match compares weakly.
func (e etagCond) matches(rev int64, exists, strong bool) bool {
	if e.any {
		return exists
	}
	for _, t := range e.tags {
		if t.rev == rev && !(strong && t.weak) {
			return true
		}
	}
	return false
}

// checkIfMatch evaluates If-Match for a write to target, whose ETag is
// "<rev>" (the head revision of its service or group) and which exists or
// not ("*" asks for an existing target: a file for the file routes).
// given reports whether the header was sent. err is a *configsvc.FieldError
// (400) for a malformed header, or wraps api.ErrPrecondition (412) when
// the condition is false: a stale revision, "*" on a missing target, or
// only weak tags, which never match in If-Match.
func checkIfMatch(c *gin.Context, target string, rev int64, exists bool) (given bool, err error) {
	cond, err := parseETagCond(c, headerIfMatch)
	if err != nil || !cond.present {
		return false, err
	}
	if cond.matches(rev, exists, true) {
		return true, nil
	}
	h := configsvc.Truncate(strings.Join(c.Request.Header.Values(headerIfMatch), ", "), 80)
	switch {
	case cond.any:
		return true, userErr(api.ErrPrecondition, "If-Match * but %s does not exist", target)
	case cond.matches(rev, exists, false):
		return true, userErr(api.ErrPrecondition, "If-Match %s: a weak ETag never matches in If-Match (RFC 9110 strong comparison); send %s", h, etag(rev))
	}
	return true, userErr(api.ErrPrecondition, "If-Match %s but %s is at revision %d now; reload it and try again", h, target, rev)
}

// notModified answers a GET of a representation whose ETag is "<rev>": it
// sets ETag and X-Sluice-Revision and, when If-None-Match matches (weak
// comparison, or "*"), answers 304 Not Modified. done reports that the
// request is answered (304, or 400 for a malformed header): the caller
// then writes nothing more.
func (s *Server) notModified(c *gin.Context, rev int64) (done bool) {
	cond, err := parseETagCond(c, headerIfNoneMatch)
	if err != nil {
		s.fail(c, err)
		return true
	}
	setRevisionHeaders(c, rev)
	if cond.present && cond.matches(rev, true, false) {
		c.Status(http.StatusNotModified)
		return true
	}
	return false
}

func etag(rev int64) string { return `"` + strconv.FormatInt(rev, 10) + `"` }

// setRevisionHeaders sets ETag and X-Sluice-Revision.
func setRevisionHeaders(c *gin.Context, rev int64) {
	c.Header("ETag", etag(rev))
	c.Header("X-Sluice-Revision", strconv.FormatInt(rev, 10))
}

// readBody reads at most limit bytes of the request body; more is a
// *configsvc.LimitError (413).
func readBody(c *gin.Context, limit int64, what string) ([]byte, error) {
	if c.Request.ContentLength > limit {
		return nil, &configsvc.LimitError{What: what, Size: c.Request.ContentLength, Limit: limit}
	}
	data, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, &configsvc.LimitError{What: what, Size: limit + 1, Limit: limit}
	}
	if err != nil {
		return nil, &configsvc.FieldError{Field: "body", Msg: "could not be read: " + err.Error()}
	}
	return data, nil
}

// mediaType returns the request's media type, lowercased, without
// parameters; "" when absent.
func mediaType(c *gin.Context) (string, error) {
	ct := c.GetHeader("Content-Type")
	if ct == "" {
		return "", nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", userErr(errUnsupportedMed, "Content-Type %q does not parse", configsvc.Truncate(ct, 80))
	}
	return mt, nil
}

// decodeJSON reads a JSON body of at most limit bytes into v. The body must
// be declared application/json, hold exactly one value and no unknown
// fields.
func decodeJSON(c *gin.Context, limit int64, v any) error {
	mt, err := mediaType(c)
	if err != nil {
		return err
	}
	if mt != "application/json" {
		return userErr(errUnsupportedMed, "the body must be application/json, not %q", mt)
	}
	data, err := readBody(c, limit, "request body")
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &configsvc.FieldError{Field: "body", Msg: "malformed JSON: " + err.Error()}
	}
	if dec.More() {
		return &configsvc.FieldError{Field: "body", Msg: "malformed JSON: more than one value"}
	}
	return nil
}

// rawUploadTypes returns the media types a raw file upload may declare
// besides these two: none at all, and any text/* type. openapi.json
// declares exactly these (openapi_test.go checks it), so generated clients
// offer each. HTML forms' types are refused.
func rawUploadTypes() []string {
	return []string{"application/json", "application/yaml", "application/x-yaml", "application/toml",
		"application/octet-stream", "application/x-java-properties"}
}

// rawContentOK reports whether a raw file upload may declare media type mt
// ("" when absent).
func rawContentOK(mt string) bool {
	return mt == "" || strings.HasPrefix(mt, "text/") || slices.Contains(rawUploadTypes(), mt)
}

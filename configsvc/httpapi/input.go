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
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
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

// queryInt parses an optional integer query parameter within [min, max].
// ok is false (and the request answered 400) when it is malformed or out
// of range; present reports whether it was given.
func (s *Server) queryInt(c *gin.Context, name string, min, max int64) (v int64, present, ok bool) {
	raw, present := c.GetQuery(name)
	if !present {
		return 0, false, true
	}
	v, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || v < min || v > max {
		s.fail(c, &configsvc.FieldError{Field: name, Value: raw, Msg: fmt.Sprintf("must be an integer from %d to %d", min, max)})
		return 0, true, false
	}
	return v, true, true
}

// ifMatch parses If-Match: `"N"`, `W/"N"` or `N`. It returns -1 when the
// header is absent or "*".
func ifMatch(c *gin.Context) (int64, error) {
	h := strings.TrimSpace(c.GetHeader("If-Match"))
	if h == "" || h == "*" {
		return -1, nil
	}
	v := strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || strings.Contains(h, ",") {
		return 0, &configsvc.FieldError{Field: "If-Match", Value: h, Msg: `must be one ETag "<revision>" as returned by a GET`}
	}
	return n, nil
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
		return "", fmt.Errorf("Content-Type %q does not parse: %w", configsvc.Truncate(ct, 80), errUnsupportedMed)
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
		return fmt.Errorf("the body must be application/json, not %q: %w", mt, errUnsupportedMed)
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

// rawContentTypes are the media types accepted for a raw file upload;
// absent is accepted too. HTML forms' types are refused.
func rawContentOK(mt string) bool {
	switch {
	case mt == "", strings.HasPrefix(mt, "text/"):
		return true
	}
	switch mt {
	case "application/json", "application/yaml", "application/x-yaml", "application/toml",
		"application/octet-stream", "application/x-java-properties":
		return true
	}
	return false
}

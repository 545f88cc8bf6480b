package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// maxResponse bounds how much of a response body the client reads: a file is
// at most 512 KiB, so 32 MiB leaves room for any listing or diff.
const maxResponse = 32 << 20

// client calls the admin API. It is safe for concurrent use.
type client struct {
	base        string // server URL without a trailing slash
	token       string // never printed
	tokenSource string // where the token came from, for 401 hints
	http        *http.Client
}

func newClient(base, token, tokenSource string, timeout time.Duration) *client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          4,
		IdleConnTimeout:       30 * time.Second,
	}
	return &client{base: base, token: token, tokenSource: tokenSource, http: &http.Client{Transport: tr, Timeout: timeout}}
}

// request is one API call.
type request struct {
	method      string
	path        string     // escaped path, starting with /v1
	query       url.Values // optional
	body        io.Reader  // optional
	contentType string     // set with body
	header      http.Header
}

// response is a successful (2xx) API answer with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// revision returns the revision the response names in X-Sluice-Revision or
// its ETag ("<revision>"), or 0.
func (r *response) revision() int64 {
	if n, err := strconv.ParseInt(r.header.Get("X-Sluice-Revision"), 10, 64); err == nil {
		return n
	}
	if n, ok := parseETag(r.header.Get("ETag")); ok {
		return n
	}
	return 0
}

func parseETag(s string) (int64, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "W/")
	n, err := strconv.ParseInt(strings.Trim(s, `"`), 10, 64)
	return n, err == nil
}

// do sends req and returns the response, or an *apiError for a non-2xx
// answer, or an error explaining that the server cannot be reached.
func (c *client) do(ctx context.Context, req request) (*response, error) {
	u := c.base + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, req.body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.method, req.path, err)
	}
	for k, vs := range req.header {
		hr.Header[k] = vs
	}
	if req.contentType != "" {
		hr.Header.Set("Content-Type", req.contentType)
	}
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", "sluice-cli")
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		return nil, c.transportError(req, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read response: %w", req.method, req.path, err)
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("%s %s: response over %d bytes", req.method, req.path, maxResponse)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := parseAPIError(resp, body)
		if resp.StatusCode == http.StatusUnauthorized {
			e.hint = "token from " + c.tokenSource
			if c.token == "" {
				e.hint = "no token sent: " + c.tokenSource + " is set"
			}
		}
		return nil, e
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// doJSON sends in (if not nil) as a JSON body and decodes the answer into
// out (if not nil).
func (c *client) doJSON(ctx context.Context, method, path string, query url.Values, in, out any) (*response, error) {
	req := request{method: method, path: path, query: query}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		req.body, req.contentType = bytes.NewReader(b), "application/json"
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	if out != nil && len(bytes.TrimSpace(resp.body)) > 0 {
		if err := json.Unmarshal(resp.body, out); err != nil {
			return nil, fmt.Errorf("%s %s: unexpected response: %w", method, path, err)
		}
	}
	return resp, nil
}

func (c *client) transportError(req request, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Timeout() {
		return fmt.Errorf("%s %s: no answer from %s in time: %w", req.method, req.path, c.base, err)
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s %s: interrupted", req.method, req.path)
	}
	return fmt.Errorf("cannot reach the sluice server at %s (is `sluice server` running? set --server or SLUICE_SERVER): %w", c.base, unwrapURLError(err))
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// apiError is a non-2xx answer of the admin server:
// {"error":{"code","message","details"}}.
type apiError struct {
	Status  int
	Code    string
	Message string
	Details map[string]any
	// RetryAfter is the server's Retry-After header, if any.
	RetryAfter string
	hint       string
}

func parseAPIError(resp *http.Response, body []byte) *apiError {
	e := &apiError{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After")}
	var env struct {
		Error struct {
			Code    string         `json:"code"`
			Message string         `json:"message"`
			Details map[string]any `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && (env.Error.Code != "" || env.Error.Message != "") {
		e.Code, e.Message, e.Details = env.Error.Code, env.Error.Message, env.Error.Details
		return e
	}
	// Not the API's error shape (a proxy in between, a wrong --server):
	// say what came back, briefly.
	e.Code = strings.ToLower(strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "_"))
	msg := strings.TrimSpace(string(body))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	e.Message = msg
	return e
}

// detailRank orders detail keys: the position of a parse error first, then
// the rest alphabetically.
func detailRank(k string) int {
	switch k {
	case "file":
		return 1
	case "line":
		return 2
	case "column":
		return 3
	case "format":
		return 4
	case "field":
		return 5
	case "what":
		return 6
	case "size":
		return 7
	case "limit":
		return 8
	}
	return 100
}

// Error renders "message (HTTP 422 invalid; file=db.json line=3 column=5)".
func (e *apiError) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	b.WriteString(" (HTTP ")
	b.WriteString(strconv.Itoa(e.Status))
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		oi, oj := detailRank(keys[i]), detailRank(keys[j])
		if oi != oj {
			return oi < oj
		}
		return keys[i] < keys[j]
	})
	for i, k := range keys {
		if i == 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " %s=%s", k, detailString(e.Details[k]))
	}
	if e.RetryAfter != "" {
		b.WriteString("; retry after " + e.RetryAfter + "s")
	}
	if e.hint != "" {
		b.WriteString("; " + e.hint)
	}
	b.WriteString(")")
	return b.String()
}

func detailString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// isStatus reports whether err is an API error with HTTP status code.
func isStatus(err error, code int) bool {
	var e *apiError
	return errors.As(err, &e) && e.Status == code
}

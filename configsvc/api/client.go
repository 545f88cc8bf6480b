package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// HeaderIdempotencyKey is the request header that makes a write safe to
// retry: the admin server answers a repeat with the same key (same
// credential, method and path) within 24 h with the first answer, writing
// nothing (docs/api.md). The Client sends a new one with every write but
// instance registrations, and sends the write again under it when the
// answer was lost.
const HeaderIdempotencyKey = "Idempotency-Key"

// Defaults for the zero values of Config, and the client's limits.
const (
	// DefaultServer is the admin server used when Config.Servers is empty.
	DefaultServer = "http://127.0.0.1:7070"
	// DefaultTimeout bounds one request.
	DefaultTimeout = 30 * time.Second
	// DefaultRetryMin and DefaultRetryMax bound the backoff between
	// attempts to reopen a broken event stream.
	DefaultRetryMin = 100 * time.Millisecond
	DefaultRetryMax = time.Second
	// DefaultIdleTimeout is how long an event stream may stay silent before
	// it is taken for dead; the server writes a ping every 15 s.
	DefaultIdleTimeout = 45 * time.Second
	// DefaultHeartbeat is how often a Lease refreshes its instance; the
	// server keeps an instance 30 s after the last refresh.
	DefaultHeartbeat = 10 * time.Second
	// MaxResponseSize bounds how much of an answer the client reads: a file
	// is at most 512 KiB, so this leaves room for any listing or diff.
	MaxResponseSize = 32 << 20
)

// Config configures a Client. Every zero value is a documented default.
type Config struct {
	// Servers are the base URLs of the admin servers of one cluster
	// ("http://10.0.0.5:7070"), in fail-over order: when the server in use
	// cannot be reached, a request moves on to the next one, wrapping
	// around, and the first that answers is used from then on. Reads, event
	// streams and instance registrations also move on when the server
	// answers 429 or 5xx; a write (publish, rollback, creation …) then does
	// not, as it may have taken effect. A write whose answer was lost (the
	// connection broke after sending) is sent again to the same server
	// under its Idempotency-Key. Default: DefaultServer.
	Servers []string
	// Token is the API token sent as "Authorization: Bearer". It is never
	// logged nor put in an error. Default: none (only /healthz, /readyz and
	// the OpenAPI document answer).
	Token string
	// HTTPClient sends the requests. It must have no overall Timeout (event
	// streams are long-lived); the client bounds each request with Timeout.
	// Default: a client with its own clone of http.DefaultTransport, whose
	// idle connections Close releases.
	HTTPClient *http.Client
	// Timeout bounds each request, reading the answer included; for an
	// event stream, the wait for the server to accept it. The caller's ctx
	// may end a call sooner. Default: DefaultTimeout.
	Timeout time.Duration
	// RetryMin and RetryMax bound the jittered exponential backoff between
	// attempts to reopen an event stream. Defaults: DefaultRetryMin and
	// DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// IdleTimeout is how long an event stream may stay silent before the
	// client drops it and reconnects. Default: DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Heartbeat is how often a Lease from Register refreshes its instance.
	// Default: DefaultHeartbeat.
	Heartbeat time.Duration
	// UserAgent is sent with every request. Default: "sluice-api".
	UserAgent string
	// SecretEnvelopes asks for secret files (configsvc.IsSecretFile) as
	// their stored envelopes (HeaderSecrets: envelope), which DataKey
	// opens: what the SDK does, so that its cache holds ciphertext only.
	// Default false: the plaintext for a token with the secrets grant, a
	// placeholder without.
	SecretEnvelopes bool
	// Logger receives the client's rare log lines (a fail-over to another
	// server, a failed instance refresh). Default: a logger that discards.
	Logger *slog.Logger
}

// Client calls the admin API of one Sluice cluster. It is safe for
// concurrent use. Close releases its idle connections when it created its
// own HTTP client; watches and leases end with their ctx and Close.
type Client struct {
	cfg   Config
	hc    *http.Client
	ownHC bool
	cur   atomic.Uint32 // index into cfg.Servers of the server in use
}

// New returns a Client for cfg. It fails (wrapping configsvc.ErrInvalid)
// when a server is not an http:// or https:// URL with a host.
func New(cfg Config) (*Client, error) {
	if len(cfg.Servers) == 0 {
		cfg.Servers = []string{DefaultServer}
	}
	servers := make([]string, len(cfg.Servers))
	for i, s := range cfg.Servers {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("api: server %q must be an http:// or https:// URL such as %s: %w", s, DefaultServer, configsvc.ErrInvalid)
		}
		servers[i] = strings.TrimRight(s, "/")
	}
	cfg.Servers = servers
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	cfg.RetryMax = max(cfg.RetryMax, cfg.RetryMin)
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "sluice-api"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, hc: cfg.HTTPClient}
	if c.hc == nil {
		c.hc = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		c.ownHC = true
	}
	return c, nil
}

// Close releases the idle connections of the HTTP client the Client
// created; a Config.HTTPClient is left alone. It does not end watches or
// leases (their ctx and Close do). It is safe to call more than once.
func (c *Client) Close() error {
	if c.ownHC {
		c.hc.CloseIdleConnections()
	}
	return nil
}

// Server returns the base URL of the server in use.
func (c *Client) Server() string { return c.cfg.Servers[c.cur.Load()] }

// request is one API call.
type request struct {
	method      string
	path        string     // escaped, starting with /v1 (or /readyz)
	query       url.Values // optional
	body        []byte     // optional
	contentType string     // set with body
	header      http.Header
	accept      string // default application/json
	// retry allows a fail-over after a 429 or 5xx answer: set for reads
	// and for requests that may safely take effect twice.
	retry bool
	// noKey: a write sent without an Idempotency-Key (instance
	// registrations, which are idempotent and frequent).
	noKey bool
}

// response is a 2xx answer with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// revision returns the revision the answer names in X-Sluice-Revision or
// its ETag ("<revision>"), or 0.
func (r *response) revision() int64 {
	if n, err := strconv.ParseInt(r.header.Get("X-Sluice-Revision"), 10, 64); err == nil {
		return n
	}
	s := strings.TrimPrefix(strings.TrimSpace(r.header.Get("ETag")), "W/")
	n, _ := strconv.ParseInt(strings.Trim(s, `"`), 10, 64)
	return n
}

// do sends req to the server in use, failing over to the others in order
// (see Config.Servers), and returns the 2xx answer, an *Error for any other
// status, or a *ConnError.
//
// A write (but an instance registration) carries an Idempotency-Key, one
// per call, the same on every attempt: when the connection breaks after
// the request was sent, so that its answer is lost, the request is sent
// again with the key, which the server answers with the first answer
// (writing nothing twice); while the first is still being answered (409
// idempotency_in_progress) the client waits its Retry-After. At most
// maxKeyedAttempts attempts. When a resent write reaches no server, the
// error is the lost answer's (see lostAnswer), never a refused
// connection's: the write may have been applied.
func (c *Client) do(ctx context.Context, req request) (*response, error) {
	keyed := isWrite(req.method) && !req.noKey
	if keyed && req.header.Get(HeaderIdempotencyKey) == "" {
		h := req.header.Clone()
		if h == nil {
			h = http.Header{}
		}
		h.Set(HeaderIdempotencyKey, NewIdempotencyKey())
		req.header = h
	}
	var lost *ConnError // an attempt whose answer was lost: it may have been applied
	for attempt := 1; ; attempt++ {
		var resp *response
		err := c.each(ctx, req.retry || req.method == http.MethodGet, func(base string) error {
			var err error
			resp, err = c.try(ctx, base, req)
			return err
		})
		if err == nil || !keyed || attempt >= maxKeyedAttempts || ctx.Err() != nil {
			return resp, lostAnswer(err, lost)
		}
		var ce *ConnError
		var ae *Error
		switch {
		case errors.As(err, &ce) && !dialFailed(ce.Err):
			// The answer was lost: ask again under the same key.
			lost = ce
		case errors.As(err, &ae) && ae.Code == CodeInProgress:
			if !sleep(ctx, min(max(ae.RetryAfter, c.cfg.RetryMin), 5*time.Second)) {
				return resp, err
			}
		default:
			return resp, lostAnswer(err, lost)
		}
		c.cfg.Logger.Info("api: sending a write again under its idempotency key", "method", req.method, "path", req.path, "after", err)
	}
}

// lostAnswer returns err, the error of a write's last attempt, unless
// that attempt reached no server (a refused connection) after an earlier
// one, lost, was sent and its answer lost: that one may have been applied,
// so the error is a *ConnError for the lost answer, naming the refused
// retry without wrapping it. A caller must not read "no server could be
// reached" as "nothing was written".
func lostAnswer(err error, lost *ConnError) error {
	var ce *ConnError
	if lost == nil || !errors.As(err, &ce) || !dialFailed(ce.Err) {
		return err
	}
	return &ConnError{Method: lost.Method, Path: lost.Path, Server: lost.Server,
		Err: fmt.Errorf("%w; the write may have been applied: sending it again under its idempotency key reached no server (%v)", lost.Err, ce.Err)}
}

// maxKeyedAttempts bounds the attempts of one write with an idempotency key.
const maxKeyedAttempts = 4

func isWrite(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// NewIdempotencyKey returns a new random idempotency key (a UUID, version 4).
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// each calls try with the base URL of each server in fail-over order until
// one answers; an answer of 429 or 5xx counts only when retry is not set.
// See Config.Servers.
func (c *Client) each(ctx context.Context, retry bool, try func(base string) error) error {
	start := int(c.cur.Load())
	var err error
	for i := range c.cfg.Servers {
		idx := (start + i) % len(c.cfg.Servers)
		err = try(c.cfg.Servers[idx])
		if err == nil || !errors.Is(err, configsvc.ErrUnavailable) {
			if idx != start && c.cur.CompareAndSwap(uint32(start), uint32(idx)) {
				c.cfg.Logger.Info("api: switched admin server", "server", c.cfg.Servers[idx], "after", c.cfg.Servers[start])
			}
			return err
		}
		if ctx.Err() != nil || !retry && !dialFailed(err) {
			return err
		}
	}
	return err
}

// try sends req to one server within Config.Timeout and reads the answer.
func (c *Client) try(ctx context.Context, base string, req request) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	// net/http sends a request with an Idempotency-Key again by itself when
	// a reused connection broke after the request was written; when that
	// second connection cannot be made, Do reports only the refused dial,
	// although the server may have applied the first. sent tells.
	var sent atomic.Bool
	if isWrite(req.method) {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(httptrace.WroteRequestInfo) { sent.Store(true) },
		})
	}
	hr, err := c.newRequest(ctx, base, req)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		if sent.Load() && dialFailed(err) {
			// Not wrapped: the error must not read as "never sent".
			err = fmt.Errorf("the request was sent and its connection broke before the answer; sending it again, %v", err)
		}
		return nil, &ConnError{Method: req.method, Path: req.path, Server: base, Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return nil, &ConnError{Method: req.method, Path: req.path, Server: base, Err: fmt.Errorf("reading the answer: %w", err)}
	}
	if len(body) > MaxResponseSize {
		return nil, fmt.Errorf("api: %s %s: answer over %d bytes", req.method, req.path, MaxResponseSize)
	}
	if resp.StatusCode/100 != 2 {
		return nil, parseError(resp, body)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

func (c *Client) newRequest(ctx context.Context, base string, req request) (*http.Request, error) {
	u := base + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("api: %s %s: %w", req.method, req.path, err)
	}
	for k, vs := range req.header {
		hr.Header[k] = vs
	}
	if req.contentType != "" {
		hr.Header.Set("Content-Type", req.contentType)
	}
	accept := req.accept
	if accept == "" {
		accept = "application/json"
	}
	hr.Header.Set("Accept", accept)
	hr.Header.Set("User-Agent", c.cfg.UserAgent)
	if c.cfg.Token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	if c.cfg.SecretEnvelopes {
		hr.Header.Set(HeaderSecrets, SecretsEnvelope)
	}
	return hr, nil
}

// doJSON sends in (when not nil) as a JSON body and decodes the answer
// into out (when not nil and the answer has a body).
func (c *Client) doJSON(ctx context.Context, req request, in, out any) (*response, error) {
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("api: %s %s: %w", req.method, req.path, err)
		}
		req.body, req.contentType = b, "application/json"
	}
	resp, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	if out != nil && len(bytes.TrimSpace(resp.body)) > 0 {
		if err := json.Unmarshal(resp.body, out); err != nil {
			return nil, fmt.Errorf("api: %s %s: unexpected response: %w", req.method, req.path, err)
		}
	}
	return resp, nil
}

// get is doJSON for a GET without a body.
func (c *Client) get(ctx context.Context, path string, query url.Values, out any) (*response, error) {
	return c.doJSON(ctx, request{method: http.MethodGet, path: path, query: query}, nil, out)
}

// refPath returns the escaped path of ref ("/v1/services/orders" or
// "/v1/shared/redis-common") followed by segs, each escaped as one segment.
func refPath(ref configsvc.Ref, segs ...string) string {
	p := "/v1/services/"
	if ref.Kind == configsvc.KindGroup {
		p = "/v1/shared/"
	}
	p += url.PathEscape(ref.Name)
	for _, s := range segs {
		p += "/" + url.PathEscape(s)
	}
	return p
}

package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
)

// Errors of the HTTP layer that have no configsvc sentinel. An *Error
// matches them with errors.Is; the server's error table maps them to their
// status.
var (
	// ErrPrecondition: a write made with If-Match found the head moved on
	// (HTTP 412). An *Error with it also matches configsvc.ErrConflict.
	ErrPrecondition = errors.New("precondition failed")
	// ErrUnauthorized: no token, or one the server does not know (HTTP 401).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the token may not do this (HTTP 403).
	ErrForbidden = errors.New("forbidden")
	// ErrInProgress: a request with the same Idempotency-Key is still being
	// answered (HTTP 409, code idempotency_in_progress); retrying later
	// returns its answer. An *Error with it also matches
	// configsvc.ErrConflict. It is access.ErrInProgress, which the server
	// answers so.
	ErrInProgress = access.ErrInProgress
)

// The codes of the error body, one per kind of failure (docs/api.md).
const (
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeInvalid      = "invalid"
	CodeTooLarge     = "too_large"
	CodeTooMany      = "too_many"
	CodeUnavailable  = "unavailable"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodePrecondition = "precondition_failed"
	CodeMediaType    = "unsupported_media_type"
	CodeCompacted    = "compacted"
	CodeMethod       = "method_not_allowed"
	CodeInternal     = "internal"
	// CodeOutcomeUnknown (503): the write was sent to the store but whether
	// it was applied could not be learnt; read the state before writing
	// again.
	CodeOutcomeUnknown = "outcome_unknown"
	// CodeInProgress (409): a request with the same Idempotency-Key is
	// still being answered; retry after Retry-After.
	CodeInProgress = "idempotency_in_progress"
)

// ErrorBody is the one JSON error shape: {"error":{"code","message","details"}},
// the body of every answer that is not 2xx and the data of a stream-error
// event (EventError).
type ErrorBody struct {
	Error *Error `json:"error"`
}

// Error is an error answer of the admin server, or a stream-error event of an
// event stream. It matches, with errors.Is, the sentinel its code or
// status stands for:
//
//	404 not_found                      configsvc.ErrNotFound
//	409 conflict, not_ready            configsvc.ErrConflict
//	412 precondition_failed            ErrPrecondition and configsvc.ErrConflict
//	400, 422 invalid                   configsvc.ErrInvalid
//	413 too_large                      configsvc.ErrTooLarge
//	429 too_many                       configsvc.ErrTooMany (and ErrUnavailable)
//	410 compacted                      configsvc.ErrCompacted
//	401 unauthorized                   ErrUnauthorized
//	403 forbidden                      ErrForbidden
//	409 idempotency_in_progress        ErrInProgress (and configsvc.ErrConflict)
//	503 outcome_unknown                configsvc.ErrOutcomeUnknown (not ErrUnavailable)
//	429, other 5xx, unavailable        configsvc.ErrUnavailable
type Error struct {
	Code string `json:"code"`
	// Message is written for the user: what failed, on which name, and
	// what to do. The server logs the internals (the store's own error)
	// with the request id instead.
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
	// RequestID is the id of the request the answer belongs to (its
	// X-Request-ID): the server's log line of the request carries it with
	// what went wrong inside. Absent in a stream-error event.
	RequestID string `json:"request_id,omitempty"`

	// Status is the HTTP status of the answer; 0 for an event of a stream.
	Status int `json:"-"`
	// RetryAfter is the answer's Retry-After (503s carry it); 0 when absent.
	RetryAfter time.Duration `json:"-"`
	// Hint, when a caller sets it, is shown inside the parentheses of Error
	// (the CLI names where the token came from). The client leaves it empty.
	Hint string `json:"-"`
}

// Error reads "message (HTTP 422 invalid; file=db.json line=3 column=5;
// retry after 2s; hint)": the message, then the status and code, the
// details (position of a parse error first), Retry-After and the hint. An
// event's error reads "message (code)".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	b.WriteString(" (")
	switch {
	case e.Status != 0:
		b.WriteString("HTTP " + strconv.Itoa(e.Status))
		if e.Code != "" {
			b.WriteString(" " + e.Code)
		}
	default:
		b.WriteString(e.Code)
	}
	keys := make([]string, 0, len(e.Details))
	for k := range e.Details {
		if k == "violations" { // listed by Violations; the first is in the other keys
			continue
		}
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		ri, rj := detailRank(keys[i]), detailRank(keys[j])
		if ri != rj {
			return ri < rj
		}
		return keys[i] < keys[j]
	})
	for i, k := range keys {
		if i == 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " %s=%s", k, detailString(e.Details[k]))
	}
	if e.RetryAfter > 0 {
		b.WriteString("; retry after " + strconv.Itoa(int(e.RetryAfter/time.Second)) + "s")
	}
	if e.Hint != "" {
		b.WriteString("; " + e.Hint)
	}
	b.WriteString(")")
	return b.String()
}

// detailRank orders detail keys: the position of a parse error first, then
// the field, then the limit, then the rest alphabetically.
func detailRank(k string) int {
	for i, name := range []string{"file", "line", "column", "pointer", "format", "keyword", "field", "what", "size", "limit"} {
		if k == name {
			return i
		}
	}
	return 100
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

// Is reports whether target is the sentinel e's code or status stands for
// (see Error).
func (e *Error) Is(target error) bool {
	code, st := e.Code, e.Status
	switch target {
	case configsvc.ErrNotFound:
		return code == CodeNotFound || st == http.StatusNotFound
	case configsvc.ErrConflict:
		return code == CodeConflict || code == CodePrecondition || code == CodeNotReady || st == http.StatusConflict || st == http.StatusPreconditionFailed
	case ErrPrecondition:
		return code == CodePrecondition || st == http.StatusPreconditionFailed
	case configsvc.ErrInvalid:
		return code == CodeInvalid || st == http.StatusBadRequest || st == http.StatusUnprocessableEntity
	case configsvc.ErrTooLarge:
		return code == CodeTooLarge || st == http.StatusRequestEntityTooLarge
	case configsvc.ErrTooMany:
		return code == CodeTooMany || st == http.StatusTooManyRequests
	case configsvc.ErrCompacted:
		return code == CodeCompacted || st == http.StatusGone
	case ErrUnauthorized:
		return code == CodeUnauthorized || st == http.StatusUnauthorized
	case ErrForbidden:
		return code == CodeForbidden || st == http.StatusForbidden
	case configsvc.ErrOutcomeUnknown:
		return code == CodeOutcomeUnknown
	case ErrInProgress:
		return code == CodeInProgress
	case configsvc.ErrUnavailable:
		return code == CodeUnavailable || st >= 500 && code != CodeOutcomeUnknown || st == http.StatusTooManyRequests
	}
	return false
}

// parseError builds the *Error of a non-2xx answer. A body that is not the
// API's error shape (a proxy in between, a wrong server address) is
// described briefly: the status text as code, the start of the body as
// message.
func parseError(resp *http.Response, body []byte) *Error {
	var env ErrorBody
	e := &Error{}
	if json.Unmarshal(body, &env) == nil && env.Error != nil && (env.Error.Code != "" || env.Error.Message != "") {
		e = env.Error
	} else {
		e.Code = strings.ToLower(strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "_"))
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "…"
		}
		if e.Message == "" {
			e.Message = http.StatusText(resp.StatusCode)
		}
	}
	e.Status = resp.StatusCode
	if e.RequestID == "" {
		e.RequestID = resp.Header.Get("X-Request-ID")
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// ConnError reports a request that got no answer: no server could be
// reached, or the connection broke or timed out before the answer was
// read. It matches configsvc.ErrUnavailable; Err says what happened (a
// *url.Error, a context error …).
type ConnError struct {
	Method string // e.g. "GET"
	Path   string // the escaped path, e.g. "/v1/services/orders"
	Server string // the base URL of the (last) server tried
	Err    error
}

// Error reads "GET /v1/services: cannot reach http://127.0.0.1:7070: …".
func (e *ConnError) Error() string {
	return e.Method + " " + e.Path + ": cannot reach " + e.Server + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *ConnError) Unwrap() error { return e.Err }

// Is reports whether target is configsvc.ErrUnavailable.
func (e *ConnError) Is(target error) bool { return target == configsvc.ErrUnavailable }

// Timeout reports whether the request ran out of time (the client's
// Timeout or the caller's deadline).
func (e *ConnError) Timeout() bool {
	var ue *url.Error
	return errors.As(e.Err, &ue) && ue.Timeout() || errors.Is(e.Err, context.DeadlineExceeded)
}

// dialFailed reports whether err means the connection was never
// established, so the request cannot have reached any server.
func dialFailed(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// StreamError reports an event stream that broke or could not be opened,
// sent inside a watch's events; the watch reconnects after Retry, resuming
// after the last revision it delivered. It matches
// configsvc.ErrUnavailable; Err is the *ConnError, the *Error of an
// answer such as a 503, or what ended the stream.
type StreamError struct {
	Err error
	// Opened reports whether the server had accepted the stream (answered
	// 200) before it ended.
	Opened bool
	// Retry is how long the watch waits before it reconnects.
	Retry time.Duration
}

// Error returns the message of Err.
func (e *StreamError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *StreamError) Unwrap() error { return e.Err }

// Is reports whether target is configsvc.ErrUnavailable.
func (e *StreamError) Is(target error) bool { return target == configsvc.ErrUnavailable }

// errStreamEnded reports a stream the server closed without an error event.
var errStreamEnded = errors.New("event stream ended")

// Violation is one violation of a JSON Schema (a config file beside its
// F.schema.json): the domain type, which has the wire shape.
type Violation = configsvc.Violation

// Violations returns the schema violations of a 422 refusal (details
// "violations"), in the order the server listed them; none for any other
// error.
func (e *Error) Violations() []Violation {
	raw, ok := e.Details["violations"]
	if !ok {
		return nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil
	}
	var out []Violation
	if json.Unmarshal(b, &out) != nil {
		return nil
	}
	return out
}

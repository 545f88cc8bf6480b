package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// TestErrorMatchesSentinels is the client's half of the error table: every
// status and code the server answers matches its sentinel, and no other.
func TestErrorMatchesSentinels(t *testing.T) {
	all := []error{configsvc.ErrNotFound, configsvc.ErrConflict, configsvc.ErrInvalid, configsvc.ErrTooLarge,
		configsvc.ErrUnavailable, configsvc.ErrCompacted, ErrPrecondition, ErrUnauthorized, ErrForbidden,
		configsvc.ErrRewritten, ErrBehind}
	tests := []struct {
		name string
		err  *Error
		want []error
	}{
		{"400 invalid", &Error{Status: 400, Code: CodeInvalid}, []error{configsvc.ErrInvalid}},
		{"422 invalid", &Error{Status: 422, Code: CodeInvalid}, []error{configsvc.ErrInvalid}},
		{"401", &Error{Status: 401, Code: CodeUnauthorized}, []error{ErrUnauthorized}},
		{"403", &Error{Status: 403, Code: CodeForbidden}, []error{ErrForbidden}},
		{"404", &Error{Status: 404, Code: CodeNotFound}, []error{configsvc.ErrNotFound}},
		{"409", &Error{Status: 409, Code: CodeConflict}, []error{configsvc.ErrConflict}},
		{"410", &Error{Status: 410, Code: CodeCompacted}, []error{configsvc.ErrCompacted}},
		{"412", &Error{Status: 412, Code: CodePrecondition}, []error{ErrPrecondition, configsvc.ErrConflict}},
		{"413", &Error{Status: 413, Code: CodeTooLarge}, []error{configsvc.ErrTooLarge}},
		{"415", &Error{Status: 415, Code: CodeMediaType}, nil},
		{"429 from a proxy", &Error{Status: 429, Code: "too_many_requests"}, []error{configsvc.ErrUnavailable}},
		{"500", &Error{Status: 500, Code: CodeInternal}, []error{configsvc.ErrUnavailable}},
		{"502 from a proxy", &Error{Status: 502, Code: "bad_gateway"}, []error{configsvc.ErrUnavailable}},
		{"503", &Error{Status: 503, Code: CodeUnavailable}, []error{configsvc.ErrUnavailable}},
		{"503 behind", &Error{Status: 503, Code: CodeBehind}, []error{ErrBehind, configsvc.ErrUnavailable}},
		{"event: rewritten", &Error{Code: CodeRewritten}, []error{configsvc.ErrRewritten}},
		{"404 without the error shape", &Error{Status: 404, Code: "not_found"}, []error{configsvc.ErrNotFound}},
		{"event: compacted", &Error{Code: CodeCompacted}, []error{configsvc.ErrCompacted}},
		{"event: not_found", &Error{Code: CodeNotFound}, []error{configsvc.ErrNotFound}},
		{"event: unavailable", &Error{Code: CodeUnavailable}, []error{configsvc.ErrUnavailable}},
		{"event: internal", &Error{Code: CodeInternal}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wrapped := fmt.Errorf("context: %w", tc.err)
			for _, s := range all {
				want := false
				for _, w := range tc.want {
					want = want || w == s
				}
				if got := errors.Is(wrapped, s); got != want {
					t.Errorf("errors.Is(%v, %q) = %v, want %v", tc.err, s, got, want)
				}
			}
		})
	}
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"parse error, position first", &Error{Status: 422, Code: CodeInvalid, Message: "db.json:3:5: invalid json",
			Details: map[string]any{"format": "json", "column": float64(5), "line": float64(3), "file": "db.json", "extra": true}},
			"db.json:3:5: invalid json (HTTP 422 invalid; file=db.json line=3 column=5 format=json extra=true)"},
		{"limit", &Error{Status: 413, Code: CodeTooLarge, Message: "too big", Details: map[string]any{"limit": float64(524288), "size": float64(600000), "what": `file "a.txt"`}},
			`too big (HTTP 413 too_large; what=file "a.txt" size=600000 limit=524288)`},
		{"retry after and hint", &Error{Status: 503, Code: CodeUnavailable, Message: "store unavailable", RetryAfter: 2 * time.Second, Hint: "token from X"},
			"store unavailable (HTTP 503 unavailable; retry after 2s; token from X)"},
		{"event", &Error{Code: CodeUnavailable, Message: "zk down"}, "zk down (unavailable)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.want {
				t.Fatalf("Error() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseError(t *testing.T) {
	resp := func(status int, retry string) *http.Response {
		h := http.Header{}
		if retry != "" {
			h.Set("Retry-After", retry)
		}
		return &http.Response{StatusCode: status, Header: h}
	}
	e := parseError(resp(503, "3"), []byte(`{"error":{"code":"unavailable","message":"store down","details":{"field":"x"}}}`))
	if e.Status != 503 || e.Code != CodeUnavailable || e.Message != "store down" || e.Details["field"] != "x" || e.RetryAfter != 3*time.Second {
		t.Fatalf("API error = %+v", e)
	}
	e = parseError(resp(502, ""), []byte("  upstream down \n"))
	if e.Status != 502 || e.Code != "bad_gateway" || e.Message != "upstream down" {
		t.Fatalf("foreign error = %+v", e)
	}
	e = parseError(resp(404, "soon"), []byte(strings.Repeat("x", 300)))
	if e.Code != "not_found" || len(e.Message) != 200+len("…") || e.RetryAfter != 0 {
		t.Fatalf("long foreign error = %q, %v", e.Message, e.RetryAfter)
	}
	if e = parseError(resp(500, ""), nil); e.Message != "Internal Server Error" {
		t.Fatalf("empty body = %+v", e)
	}
}

func TestConnAndStreamErrors(t *testing.T) {
	dial := &url.Error{Op: "Get", URL: "http://127.0.0.1:1/v1", Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	ce := &ConnError{Method: "GET", Path: "/v1/services", Server: "http://127.0.0.1:1", Err: dial}
	if !errors.Is(ce, configsvc.ErrUnavailable) || ce.Timeout() || !dialFailed(ce) {
		t.Fatalf("dial failure: unavailable %v, timeout %v, dial %v", errors.Is(ce, configsvc.ErrUnavailable), ce.Timeout(), dialFailed(ce))
	}
	if want := "GET /v1/services: cannot reach http://127.0.0.1:1: "; !strings.HasPrefix(ce.Error(), want) {
		t.Fatalf("message %q, want it to start with %q", ce.Error(), want)
	}
	late := &ConnError{Method: "GET", Path: "/v1", Server: "s", Err: &url.Error{Op: "Get", URL: "u", Err: context.DeadlineExceeded}}
	if !late.Timeout() || dialFailed(late) {
		t.Fatal("a deadline is a timeout, not a dial failure")
	}
	se := &StreamError{Err: &Error{Status: 503, Code: CodeUnavailable, Message: "m"}, Retry: time.Second}
	var ae *Error
	if !errors.Is(se, configsvc.ErrUnavailable) || !errors.As(se, &ae) || ae.Status != 503 || se.Error() != ae.Error() {
		t.Fatalf("stream error %v does not carry its answer", se)
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	for i := range 30 {
		d := b.Next()
		hi := min(10*time.Millisecond<<min(i, 20), 80*time.Millisecond)
		if d < 10*time.Millisecond || d > hi {
			t.Fatalf("attempt %d: %v outside [10ms, %v]", i, d, hi)
		}
	}
	b.Reset()
	if d := b.Next(); d != 10*time.Millisecond {
		t.Fatalf("after Reset: %v, want 10ms", d)
	}
	if d := (&Backoff{}).Next(); d != 0 {
		t.Fatalf("zero Backoff waits %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	slow := Backoff{Min: time.Hour, Max: time.Hour}
	if slow.Wait(ctx) {
		t.Fatal("Wait on an ended ctx reported a full wait")
	}
}

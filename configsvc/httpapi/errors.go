package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
)

// Errors of the HTTP layer itself; classify maps them like the store's.
var (
	errPrecondition   = errors.New("precondition failed")
	errUnsupportedMed = errors.New("unsupported media type")
	errForbidden      = errors.New("forbidden")
	errNoRoute        = errors.New("no such endpoint")
	errMethod         = errors.New("method not allowed")
)

// Error codes of the JSON error shape (docs/architecture.md, "Error shape").
const (
	codeNotFound     = "not_found"
	codeConflict     = "conflict"
	codeInvalid      = "invalid"
	codeTooLarge     = "too_large"
	codeUnavailable  = "unavailable"
	codeUnauthorized = "unauthorized"
	codeForbidden    = "forbidden"
	codePrecondition = "precondition_failed"
	codeMediaType    = "unsupported_media_type"
	codeCompacted    = "compacted"
	codeMethod       = "method_not_allowed"
	codeInternal     = "internal"
)

// classify is the one table that maps errors to an HTTP status and an error
// code. Order matters: the most specific match comes first.
func classify(err error) (int, string) {
	var parseErr *configsvc.ParseError
	var contentErr *configsvc.ContentError
	switch {
	case errors.As(err, &parseErr), errors.As(err, &contentErr):
		return http.StatusUnprocessableEntity, codeInvalid
	case errors.Is(err, errPrecondition):
		return http.StatusPreconditionFailed, codePrecondition
	case errors.Is(err, configsvc.ErrInvalid):
		return http.StatusBadRequest, codeInvalid
	case errors.Is(err, configsvc.ErrNotFound), errors.Is(err, errNoRoute):
		return http.StatusNotFound, codeNotFound
	case errors.Is(err, configsvc.ErrConflict):
		return http.StatusConflict, codeConflict
	case errors.Is(err, configsvc.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, codeTooLarge
	case errors.Is(err, configsvc.ErrCompacted):
		return http.StatusGone, codeCompacted
	case errors.Is(err, access.ErrCSRF), errors.Is(err, errForbidden):
		return http.StatusForbidden, codeForbidden
	case errors.Is(err, access.ErrUnauthenticated):
		return http.StatusUnauthorized, codeUnauthorized
	case errors.Is(err, errUnsupportedMed):
		return http.StatusUnsupportedMediaType, codeMediaType
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed, codeMethod
	case errors.Is(err, configsvc.ErrUnavailable), errors.Is(err, configsvc.ErrClosed),
		errors.Is(err, configsvc.ErrLocked), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, codeUnavailable
	}
	return http.StatusInternalServerError, codeInternal
}

// errorBody is the one JSON error shape.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

// details returns the structured details of err, per docs/architecture.md.
func details(err error) map[string]any {
	var (
		pe *configsvc.ParseError
		le *configsvc.LimitError
		fe *configsvc.FieldError
	)
	switch {
	case errors.As(err, &pe):
		return map[string]any{"file": pe.File, "line": pe.Line, "column": pe.Column, "format": string(pe.Format)}
	case errors.As(err, &le):
		return map[string]any{"limit": le.Limit, "size": le.Size, "what": le.What}
	case errors.As(err, &fe):
		return map[string]any{"field": fe.Field}
	}
	return nil
}

// fail answers err in the one JSON error shape and aborts the chain. 503
// carries Retry-After; 5xx are logged; the message of a 500 is generic so
// no internal detail leaks.
func (s *Server) fail(c *gin.Context, err error) {
	status, code := classify(err)
	msg := err.Error()
	switch {
	case status == http.StatusServiceUnavailable:
		c.Header("Retry-After", strconv.Itoa(s.retryAfter))
		s.metrics.storeErrors.Inc()
		s.cfg.Logger.Warn("store unavailable", "request_id", state(c).id, "err", err)
	case status >= 500:
		s.cfg.Logger.Error("internal error", "request_id", state(c).id, "err", err)
		msg = "internal error; see the server log for request " + state(c).id
	}
	st := state(c)
	if st.reason == "" {
		st.reason = configsvc.Truncate(msg, 200)
	}
	c.AbortWithStatusJSON(status, errorBody{Error: errorDetail{Code: code, Message: msg, Details: details(err)}})
}

// failf is fail with a formatted error wrapping a sentinel.
func (s *Server) failf(c *gin.Context, sentinel error, format string, args ...any) {
	s.fail(c, fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), sentinel))
}

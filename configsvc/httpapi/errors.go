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
	"github.com/sluicehq/sluice/configsvc/api"
)

// Errors of the HTTP layer itself; classify maps them like the store's.
// A precondition failure (412) and a refusal (403) use the api package's
// sentinels, which clients match too.
var (
	errUnsupportedMed = errors.New("unsupported media type")
	errNoRoute        = errors.New("no such endpoint")
	errMethod         = errors.New("method not allowed")
)

// classify is the one table that maps errors to an HTTP status and an error
// code. Order matters: the most specific match comes first.
func classify(err error) (int, string) {
	var parseErr *configsvc.ParseError
	var contentErr *configsvc.ContentError
	var notReady *configsvc.NotReadyError
	switch {
	case errors.As(err, &parseErr), errors.As(err, &contentErr) && errors.Is(err, configsvc.ErrInvalid):
		return http.StatusUnprocessableEntity, api.CodeInvalid
	case errors.Is(err, api.ErrPrecondition):
		return http.StatusPreconditionFailed, api.CodePrecondition
	case errors.Is(err, configsvc.ErrInvalid):
		return http.StatusBadRequest, api.CodeInvalid
	case errors.Is(err, configsvc.ErrNotFound), errors.Is(err, errNoRoute):
		return http.StatusNotFound, api.CodeNotFound
	case errors.As(err, &notReady):
		return http.StatusConflict, api.CodeNotReady
	case errors.Is(err, configsvc.ErrConflict):
		return http.StatusConflict, api.CodeConflict
	case errors.Is(err, configsvc.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, api.CodeTooLarge
	case errors.Is(err, configsvc.ErrTooMany):
		return http.StatusTooManyRequests, api.CodeTooMany
	case errors.Is(err, configsvc.ErrCompacted):
		return http.StatusGone, api.CodeCompacted
	case errors.Is(err, access.ErrCSRF), errors.Is(err, api.ErrForbidden):
		return http.StatusForbidden, api.CodeForbidden
	case errors.Is(err, access.ErrUnauthenticated):
		return http.StatusUnauthorized, api.CodeUnauthorized
	case errors.Is(err, errUnsupportedMed):
		return http.StatusUnsupportedMediaType, api.CodeMediaType
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed, api.CodeMethod
	case errors.Is(err, configsvc.ErrUnavailable), errors.Is(err, configsvc.ErrClosed),
		errors.Is(err, configsvc.ErrLocked), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, api.CodeUnavailable
	}
	return http.StatusInternalServerError, api.CodeInternal
}

// details returns the structured details of err, per docs/architecture.md.
func details(err error) map[string]any {
	var (
		pe *configsvc.ParseError
		le *configsvc.LimitError
		ce *configsvc.CountError
		fe *configsvc.FieldError
		nr *configsvc.NotReadyError
		gc *configsvc.GrayConflictError
	)
	switch {
	case errors.As(err, &nr):
		list := make([]map[string]any, len(nr.Instances))
		for i, m := range nr.Instances {
			list[i] = map[string]any{"service": m.Service, "id": m.ID, "status": string(m.Status)}
			if m.Reason != "" {
				list[i]["reason"] = m.Reason
			}
		}
		return map[string]any{"gray": nr.GrayID, "instances": list}
	case errors.As(err, &gc):
		return map[string]any{"file": gc.File, "gray": gc.GrayID}
	case errors.As(err, &pe):
		return map[string]any{"file": pe.File, "line": pe.Line, "column": pe.Column, "format": string(pe.Format)}
	case errors.As(err, &le):
		return map[string]any{"limit": le.Limit, "size": le.Size, "what": le.What}
	case errors.As(err, &ce):
		d := map[string]any{"limit": ce.Limit, "count": ce.Count, "what": ce.What}
		if ce.Setting != "" {
			d["setting"] = ce.Setting
		}
		return d
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
	case status == http.StatusTooManyRequests:
		c.Header("Retry-After", strconv.Itoa(s.retryAfter))
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
	c.AbortWithStatusJSON(status, api.ErrorBody{Error: &api.Error{Code: code, Message: msg, Details: details(err)}})
}

// failf is fail with a formatted error wrapping a sentinel.
func (s *Server) failf(c *gin.Context, sentinel error, format string, args ...any) {
	s.fail(c, fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), sentinel))
}

package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
)

// replayedHeaders are the headers of an answer kept for its idempotency
// key and sent again with its replay.
var replayedHeaders = []string{"Content-Type", "ETag", "X-Sluice-Revision", "X-Sluice-File-Revision", "Location"}

// idempotent runs after authentication on every mutating endpoint of the
// API. A request without an Idempotency-Key header passes through. One
// with a key (access.ValidateIdempotencyKey; 400 otherwise) is looked up
// among the answers kept in the store for the caller's credential, method
// and path (access.Idempotency): a kept answer is replayed (status, the
// replayedHeaders, body; Idempotent-Replayed: true) and the handler does
// not run, so nothing is written; the same key with another body, query
// (dry_run), If-Match, message or emergency reason (X-Sluice-Emergency) is
// 422; while the first request runs, 409 with Retry-After. Otherwise the
// request runs and its answer is kept for access.IdempotencyTTL (a 202
// with the change request an approval policy made of a publish too, so a
// repeat does not submit a second one), unless it wrote nothing for a
// reason that may pass (401, 403, 408, 429, and 5xx but outcome_unknown):
// then the key is released and a retry runs again.
func (s *Server) idempotent(c *gin.Context) {
	keys := c.Request.Header.Values(api.HeaderIdempotencyKey)
	if len(keys) == 0 {
		c.Next()
		return
	}
	st := state(c)
	if len(keys) > 1 {
		s.fail(c, &configsvc.FieldError{Field: api.HeaderIdempotencyKey, Value: keys[1], Msg: "must be sent once"})
		return
	}
	if err := access.ValidateIdempotencyKey(keys[0]); err != nil {
		s.fail(c, err)
		return
	}
	body, err := peekBody(c, MaxPublishBody)
	if err != nil {
		s.fail(c, err)
		return
	}
	req := access.KeyedRequest{
		Credential: st.cred.secret, Method: c.Request.Method, Path: c.Request.URL.EscapedPath(), Key: keys[0],
		Parts: [][]byte{body, []byte(c.Request.URL.RawQuery), []byte(c.GetHeader(headerIfMatch)), []byte(c.GetHeader("X-Sluice-Message"))},
	}
	if vals := c.Request.Header.Values(api.EmergencyHeader); len(vals) > 0 {
		// Only when sent, so that the requests without one keep the
		// fingerprint that servers before governance gave them.
		req.Parts = append(req.Parts, []byte(vals[0]))
	}
	claim, ans, err := s.idem.Begin(c.Request.Context(), req, s.cfg.RequestTimeout+minAuditTime+5*time.Second)
	if err != nil {
		s.fail(c, err)
		return
	}
	if ans != nil {
		st.replayed = true
		s.metrics.replays.Inc()
		h := c.Writer.Header()
		for k, v := range ans.Header {
			h[k] = v
		}
		h.Set("Idempotent-Replayed", "true")
		c.Writer.WriteHeader(ans.Status)
		if len(ans.Body) > 0 {
			_, _ = c.Writer.Write(ans.Body)
		}
		c.Abort()
		return
	}
	cw := &captureWriter{ResponseWriter: c.Writer}
	c.Writer = cw
	c.Next()

	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), minAuditTime)
	defer cancel()
	status := cw.Status()
	if keepAnswer(status, st.code) {
		a := access.Answer{Status: status, Header: http.Header{}, Body: cw.body.Bytes()}
		if cw.over {
			a.Body = nil
		}
		for _, k := range replayedHeaders {
			if v := cw.Header().Values(k); len(v) > 0 {
				a.Header[k] = v
			}
		}
		err = claim.Finish(ctx, a)
	} else {
		err = claim.Release(ctx)
	}
	if err != nil {
		s.metrics.storeErrors.Inc()
		s.cfg.Logger.Error("idempotency key not updated", "request_id", st.id, "err", err)
	}
}

// keepAnswer reports whether an answer is kept for its key: everything
// but refusals that may pass and failures that wrote nothing.
func keepAnswer(status int, code string) bool {
	switch {
	case code == api.CodeOutcomeUnknown:
		return true // it may have been written: never run it twice
	case status >= 500, status == http.StatusUnauthorized, status == http.StatusForbidden,
		status == http.StatusRequestTimeout, status == http.StatusTooManyRequests:
		return false
	}
	return true
}

// peekBody reads up to limit bytes of the request body and puts them back
// in front of the rest, for the handler to read as usual.
func peekBody(c *gin.Context, limit int64) ([]byte, error) {
	if c.Request.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(c.Request.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading the request body: %w", configsvc.ErrInvalid)
	}
	c.Request.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), c.Request.Body), c.Request.Body}
	return b, nil
}

// captureWriter keeps a copy of the answer body, up to
// access.MaxIdempotentBody.
type captureWriter struct {
	gin.ResponseWriter
	body bytes.Buffer
	over bool
}

func (w *captureWriter) keep(b []byte) {
	if w.over || w.body.Len()+len(b) > access.MaxIdempotentBody {
		w.over = true
		return
	}
	w.body.Write(b)
}

// Write writes b and keeps a copy.
func (w *captureWriter) Write(b []byte) (int, error) {
	w.keep(b)
	return w.ResponseWriter.Write(b)
}

// WriteString writes s and keeps a copy.
func (w *captureWriter) WriteString(s string) (int, error) {
	w.keep([]byte(s))
	return w.ResponseWriter.WriteString(s)
}

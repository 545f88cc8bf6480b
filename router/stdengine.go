package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"time"
)

// This file is the net/http engine's side of the seam (engine.go):
// httputil.ReverseProxy calls roundTripper, which runs Exchange.Forward
// with the stdSender kept in the Exchange.

type roundTripper struct{ r *Router }

// RoundTrip forwards the request of the Exchange in its context (see
// Exchange.Forward).
func (t roundTripper) RoundTrip(out *http.Request) (*http.Response, error) {
	x := stateFrom(out.Context())
	if x == nil {
		return nil, errors.New("router: request without route state")
	}
	s := &x.std
	s.out = out
	if _, err := x.Forward(s); err != nil {
		return nil, err
	}
	return s.resp, nil
}

// proxyError answers a request the transport could not complete.
func (r *Router) proxyError(w http.ResponseWriter, req *http.Request, err error) {
	x := stateFrom(req.Context())
	if x == nil {
		writeAnswer(w, r.errorAnswer(nil, err))
		return
	}
	writeAnswer(w, x.ErrorAnswer(err))
}

// stdSender is the net/http engine's Sender: it sends tries of the
// outbound request through the route's http.Transport.
type stdSender struct {
	x         *Exchange
	out       *http.Request
	resp      *http.Response // the last try's
	body      *deadlineBody  // the request body under BodyTimeout, if any
	replay    []byte         // the body, kept to be sent again
	cancelTry func()         // ends the context of the try whose response is used
}

// Replayable keeps a body of known length up to MaxRetryBodyBytes in
// memory (bufferBody).
func (s *stdSender) Replayable() (bool, error) {
	if s.out.Body == nil || s.out.Body == http.NoBody {
		return true, nil
	}
	return s.bufferBody()
}

// Send sends one try to addr; the route's transport bounds the wait for
// the response header by the route's timeout, a shorter timeout (the
// per-try timeout) by a context.
func (s *stdSender) Send(addr string, timeout time.Duration) (int, error) {
	out := s.out
	out.URL.Host = addr
	if s.replay != nil {
		out.Body = io.NopCloser(bytes.NewReader(s.replay))
	}
	resp, err := s.sendOnce(timeout)
	s.resp = resp
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

// Discard ends the last try's response (reading a little of its body
// first so that the connection can be reused) and its per-try context.
func (s *stdSender) Discard() {
	if s.resp != nil {
		discard(s.resp)
		s.resp = nil
	}
	if s.cancelTry != nil {
		s.cancelTry()
		s.cancelTry = nil
	}
}

// ClientErr reports the body's read error and whether the client's
// request context ended.
func (s *stdSender) ClientErr() (error, bool) {
	var body error
	if s.body != nil {
		body = s.body.failed()
	}
	return body, s.out.Context().Err() != nil
}

// sendOnce sends one try, cut after timeout when it is shorter than the
// route's own (the per-try timeout). The context of a try that got its
// response headers is cancelled when the request ends (cancelTry), not
// before: the body is still being read.
func (s *stdSender) sendOnce(timeout time.Duration) (*http.Response, error) {
	rt, out := s.x.rt, s.out
	if timeout <= 0 || timeout >= rt.timeout {
		return rt.transport.RoundTrip(out)
	}
	ctx, cancel := context.WithCancelCause(out.Context())
	timer := time.AfterFunc(timeout, func() { cancel(errPerTryTimeout) })
	resp, err := rt.transport.RoundTrip(out.WithContext(ctx))
	if !timer.Stop() && out.Context().Err() == nil {
		// The timer fired: whatever came back came too late.
		if resp != nil {
			resp.Body.Close()
		}
		cancel(nil)
		return nil, &perTryTimeoutError{timeout}
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	s.cancelTry = func() { cancel(nil) }
	return resp, nil
}

// bufferBody reads the body of the outbound request into memory so that
// it can be sent again: false (and the body untouched) when it is longer
// than MaxRetryBodyBytes or of unknown length. A body that cannot be read
// is the client's fault: the error says so (see errorAnswer).
func (s *stdSender) bufferBody() (bool, error) {
	out := s.out
	if out.ContentLength < 0 || out.ContentLength > MaxRetryBodyBytes {
		return false, nil
	}
	buf := make([]byte, out.ContentLength)
	if _, err := io.ReadFull(out.Body, buf); err != nil {
		if s.body != nil && s.body.failed() != nil || out.Context().Err() != nil {
			return false, err // errorAnswer answers 408, 400 or nothing (client gone)
		}
		return false, &proxyErr{status: http.StatusBadRequest, code: "invalid", msg: "the request body could not be read: " + err.Error()}
	}
	// Read on to EOF, as the transport would: net/http then lifts the body
	// deadline of the client's connection and watches it for the client
	// going away while the response streams.
	var one [1]byte
	if n, _ := out.Body.Read(one[:]); n > 0 {
		return false, &proxyErr{status: http.StatusBadRequest, code: "invalid", msg: "the request body is longer than its Content-Length"}
	}
	s.replay = buf
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	return true, nil
}

// discard ends a response the proxy will not pass on, reading a little of
// its body first so that the connection can be reused.
func discard(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
}

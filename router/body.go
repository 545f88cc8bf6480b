package router

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// ErrBodyTimeout marks a request body that did not arrive within
// Config.BodyTimeout: the router answers 408. An engine's Sender wraps
// its body read errors with it (see Sender.ClientErr).
var ErrBodyTimeout = errors.New("request body timeout")

// deadlineBody is a request body read under a deadline on the client's
// connection (Config.BodyTimeout), remembering why reading it failed, so
// that the failure is answered as the client's (408, 400) and not held
// against the upstream instance. net/http lifts the deadline itself once
// the body is read to its end (it then watches the idle connection for the
// client going away), so a long response is not cut by it. It is allocated
// per request, not pooled: the transport may still read or close it after
// the handler returned.
type deadlineBody struct {
	io.ReadCloser

	mu  sync.Mutex
	err error // the first read error other than io.EOF
}

// newDeadlineBody sets the read deadline of w's connection and returns
// body under it, or nil when w cannot take a deadline.
func newDeadlineBody(w http.ResponseWriter, body io.ReadCloser, deadline time.Time) *deadlineBody {
	if http.NewResponseController(w).SetReadDeadline(deadline) != nil {
		return nil
	}
	return &deadlineBody{ReadCloser: body}
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		var ne net.Error
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("%w: %w", ErrBodyTimeout, err)
		}
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

// failed returns the error reading the body failed with, if it did.
func (b *deadlineBody) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

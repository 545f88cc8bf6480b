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

// errBodyTimeout marks a request body that did not arrive within
// Config.BodyTimeout.
var errBodyTimeout = errors.New("request body timeout")

// deadlineBody is a request body read under a deadline on the client's
// connection (Config.BodyTimeout). Once the body is read to its end the
// deadline is lifted, so that the connection's own background read cannot
// time out, and cancel the request, while a long response streams. It is
// allocated per request, not pooled: the transport may still read or close
// it after the handler returned.
type deadlineBody struct {
	body io.ReadCloser
	rc   *http.ResponseController

	mu   sync.Mutex
	done bool  // the deadline was lifted, or the handler returned: leave the connection alone
	err  error // the first read error other than io.EOF
}

// newDeadlineBody sets the read deadline of w's connection and returns
// body under it, or nil when w cannot take a deadline.
func newDeadlineBody(w http.ResponseWriter, body io.ReadCloser, deadline time.Time) *deadlineBody {
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(deadline) != nil {
		return nil
	}
	return &deadlineBody{body: body, rc: rc}
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	switch {
	case err == nil:
	case err == io.EOF:
		b.lift()
	default:
		var ne net.Error
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("%w: %w", errBodyTimeout, err)
		}
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

// Close closes the body. The deadline stays: what net/http reads of an
// unread rest after the handler returned stays bounded by it.
func (b *deadlineBody) Close() error { return b.body.Close() }

// lift removes the deadline, unless the handler already returned (the
// connection may be serving the next request by now).
func (b *deadlineBody) lift() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
}

// finish is called when the handler returns: the body no longer touches
// the connection's deadline.
func (b *deadlineBody) finish() {
	b.mu.Lock()
	b.done = true
	b.mu.Unlock()
}

// failed returns the error reading the body failed with, if it did.
func (b *deadlineBody) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

package httpapi

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
)

// The server flags that set the limits, named in 429 answers so that an
// operator knows what to raise (cmd/sluice registers them).
const (
	settingStreams          = "--max-streams-per-token"
	settingSessions         = "--max-sessions-per-token"
	settingInstancesService = "--max-instances-per-service"
	settingInstancesToken   = "--max-instances-per-token"
)

// streamTable counts the event streams each token holds open on this
// server, and lets the server wait for every stream to end when it closes.
type streamTable struct {
	mu     sync.Mutex
	open   map[string]int // token id → open streams
	total  int
	closed bool
	idle   chan struct{} // closed when closed and total is 0
}

func newStreamTable() *streamTable {
	return &streamTable{open: map[string]int{}, idle: make(chan struct{})}
}

// errStreamsClosed refuses a stream on a server that is closing.
var errStreamsClosed = userErr(configsvc.ErrClosed, "the server is shutting down; open the stream on another server of the cluster")

// acquire takes one stream slot of token for the stream's life; release
// gives it back, after the stream has written its last event. With limit >
// 0 and the token at it, acquire fails with a *configsvc.CountError naming
// the limit; after close it fails with configsvc.ErrClosed.
func (t *streamTable) acquire(token string, limit int) (release func(), err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errStreamsClosed
	}
	if n := t.open[token]; limit > 0 && n >= limit {
		return nil, &configsvc.CountError{What: "open event streams of token " + token + " on this server", Count: int64(n), Limit: int64(limit), Setting: settingStreams}
	}
	t.open[token]++
	t.total++
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			if t.open[token]--; t.open[token] <= 0 {
				delete(t.open, token)
			}
			if t.total--; t.closed && t.total == 0 {
				close(t.idle)
			}
		})
	}, nil
}

// closeAndWait refuses new streams and waits until every open stream has
// ended (their contexts must be cancelled already), or for timeout, and
// reports whether they all ended.
func (t *streamTable) closeAndWait(timeout time.Duration) bool {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		if t.total == 0 {
			close(t.idle)
		}
	}
	t.mu.Unlock()
	select {
	case <-t.idle:
		return true
	case <-time.After(timeout):
		return false
	}
}

// credential is the secret a request authenticated with, kept for the
// life of an event stream so that the stream can re-check it; never logged
// nor stored.
type credential struct {
	secret  string
	session bool // a console session id rather than an API token
}

// credCache remembers, per credential (by hash), the last re-check of it,
// so that many streams of one token cost one store read per interval.
type credCache struct {
	mu sync.Mutex
	m  map[string]credCheck
}

type credCheck struct {
	at  time.Time
	err error
	// checking: a stream is reading the store for this credential now;
	// the others reuse at and err meanwhile.
	checking bool
}

// maxCredCache bounds the cache; a full cache is emptied (a re-check then
// costs a store read, never memory).
const maxCredCache = 100000

func newCredCache() *credCache { return &credCache{m: map[string]credCheck{}} }

// sweep drops the entries older than a minute.
func (c *credCache) sweep() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if time.Since(e.at) > time.Minute {
			delete(c.m, k)
		}
	}
}

// recheck reports whether cred still authenticates: nil while it does, an
// error wrapping access.ErrUnauthenticated once its token was revoked or
// expired or its session ended. A store that cannot answer is not a
// refusal (nil): the stream carries on until the store answers. Checks
// less than half of StreamRecheck old are reused, and while one stream
// reads the store for a credential the others reuse the check before it
// (at the first check: none, nil), so a credential costs one read at a
// time however many streams re-check it.
//
// key is access.HashToken(cred.secret), computed once per stream; a
// reused check costs a map lookup and nothing else, which matters with
// thousands of streams re-checking every StreamRecheck. A check that
// reads the store is bounded by RequestTimeout.
func (s *Server) recheck(ctx context.Context, cred credential, key string) error {
	s.creds.mu.Lock()
	e, ok := s.creds.m[key]
	if ok && (e.checking || time.Since(e.at) < s.cfg.StreamRecheck/2) {
		s.creds.mu.Unlock()
		return e.err
	}
	if len(s.creds.m) >= maxCredCache {
		clear(s.creds.m)
	}
	e.checking = true
	s.creds.m[key] = e
	s.creds.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	var err error
	if cred.session {
		_, err = s.sessions.Authenticate(ctx, cred.secret, "", false)
	} else {
		_, err = s.tokens.Authenticate(ctx, cred.secret)
	}
	s.creds.mu.Lock()
	defer s.creds.mu.Unlock()
	if err != nil && !errors.Is(err, access.ErrUnauthenticated) {
		// Not an answer: keep the check before it, to be tried again.
		e.checking = false
		s.creds.m[key] = e
		return nil
	}
	s.creds.m[key] = credCheck{at: time.Now(), err: err}
	return err
}

// instanceCounts caches how many live instances each service has, so that
// a fleet registering at once does not list the service per registration.
type instanceCounts struct {
	mu sync.Mutex
	m  map[string]instanceCount
}

type instanceCount struct {
	n  int
	at time.Time
}

// instanceCountTTL is how long a service's listed instance count is reused
// (plus the registrations this server made since).
const instanceCountTTL = time.Second

func newInstanceCounts() *instanceCounts { return &instanceCounts{m: map[string]instanceCount{}} }

// serviceInstances returns how many live instances svc has: listed from
// the store at most once per instanceCountTTL, plus this server's
// registrations since.
func (s *Server) serviceInstances(ctx context.Context, svc string) (int, error) {
	ic := s.instCounts
	ic.mu.Lock()
	e, ok := ic.m[svc]
	ic.mu.Unlock()
	if ok && time.Since(e.at) < instanceCountTTL {
		return e.n, nil
	}
	list, err := s.cfg.Store.Instances(ctx, svc)
	if err != nil {
		return 0, err
	}
	ic.mu.Lock()
	defer ic.mu.Unlock()
	for k, old := range ic.m { // keep the map to the services registering now
		if time.Since(old.at) >= instanceCountTTL {
			delete(ic.m, k)
		}
	}
	ic.m[svc] = instanceCount{n: len(list), at: time.Now()}
	return len(list), nil
}

// instanceAdded counts a registration this server just made into svc's
// cached count.
func (s *Server) instanceAdded(svc string) {
	ic := s.instCounts
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if e, ok := ic.m[svc]; ok {
		e.n++
		ic.m[svc] = e
	}
}

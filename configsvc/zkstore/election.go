package zkstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
)

var _ configsvc.Leader = (*Store)(nil)

// Leader election (docs/zookeeper-layout.md, "Elections"): ZooKeeper's
// standard recipe. Each campaigner creates a protected EPHEMERAL_SEQUENTIAL
// node {root}/elections/{name}/_c_{guid}-n-{seq} (the guid finds the node
// again when the create's answer was lost); the node with the lowest
// sequence leads; every other watches only the node just before its own
// (no herd effect) and checks again when it goes. A leader's node
// disappears with its session, so another campaigner takes over about one
// session timeout after a leader dies or is cut off. A cut-off leader
// gives its leadership up first: the client notices a silent connection
// two thirds of a session timeout after it last heard from ZooKeeper
// (go-zookeeper's receive timeout), and the leader resigns a sixth of a
// session timeout later (leadDownFor), before ZooKeeper can expire the
// session and let another take over. This assumes the session timeout
// ZooKeeper granted is the one configured (its maxSessionTimeout allows
// it).

// electionBackoff bounds the wait between attempts to enter an election
// after a failure (no session, a node lost with its session).
const (
	electionBackoffMin = 50 * time.Millisecond
	electionBackoffMax = time.Second
)

// leadDownFor returns how long a leader keeps its leadership without a
// connection; see above.
func (s *Store) leadDownFor() time.Duration { return s.cfg.SessionTimeout / 6 }

// errNodeGone: a campaigner's node no longer exists (its session expired).
var errNodeGone = errors.New("election node gone with its session")

func (s *Store) electionPath(name string) string { return s.cfg.Root + "/elections/" + name }

// Campaign enters election name and returns once this store leads it; see
// configsvc.Leader. Leadership is lost when ctx ends, the store closes,
// the node is deleted, the session expires, or the connection stays down
// for a sixth of the session timeout (see above). The node is removed
// when the campaign ends (resigned, ctx ended while waiting); a lost
// session removes it anyway.
func (s *Store) Campaign(ctx context.Context, name string) (<-chan struct{}, error) {
	what := "zkstore: campaign " + name
	if err := configsvc.ValidateFileName(name); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	dir := s.electionPath(name)
	backoff := electionBackoffMin
	retry := func(err error) error {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		if errors.Is(err, configsvc.ErrClosed) {
			return fmt.Errorf("%s: %w", what, configsvc.ErrClosed)
		}
		if werr := s.bg.Sleep(ctx, backoff); werr != nil {
			if errors.Is(werr, context.Canceled) || errors.Is(werr, context.DeadlineExceeded) {
				return fmt.Errorf("%s: %w", what, werr)
			}
			return fmt.Errorf("%s: %w", what, configsvc.ErrClosed)
		}
		backoff = min(2*backoff, electionBackoffMax)
		return nil
	}
	for {
		if err := s.ensureElection(ctx, dir); err != nil {
			if rerr := retry(err); rerr != nil {
				return nil, rerr
			}
			continue
		}
		sess := s.conn.SessionID()
		path, err := call(ctx, s, func(c *zk.Conn) (string, error) {
			return c.CreateProtectedEphemeralSequential(dir+"/n-", nil, s.acl)
		})
		if err != nil {
			if rerr := retry(err); rerr != nil {
				return nil, rerr
			}
			continue
		}
		err = s.waitTurn(ctx, dir, path, sess)
		if errors.Is(err, errNodeGone) {
			continue // the session expired while waiting: enter again
		}
		if err != nil {
			s.dropElectionNode(path, sess)
			if errors.Is(err, configsvc.ErrClosed) {
				return nil, fmt.Errorf("%s: %w", what, configsvc.ErrClosed)
			}
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		lost := make(chan struct{})
		if !s.bg.Go(func() {
			defer close(lost)
			s.holdLead(ctx, path, sess)
			s.dropElectionNode(path, sess)
		}) {
			return nil, fmt.Errorf("%s: %w", what, configsvc.ErrClosed)
		}
		s.log.Info("zkstore: leading election", "election", name, "node", path[strings.LastIndex(path, "/")+1:])
		return lost, nil
	}
}

// ensureElection creates {root}/elections and dir when missing.
func (s *Store) ensureElection(ctx context.Context, dir string) error {
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	if err := s.createIfMissing(octx, s.cfg.Root+"/elections", s.acl); err != nil {
		return err
	}
	return s.createIfMissing(octx, dir, s.acl)
}

// electionSeq returns the sequence number of an election node's name (its
// last ten digits); ok is false for a name that is not one.
func electionSeq(name string) (string, bool) {
	i := strings.LastIndex(name, "-n-")
	if i < 0 || len(name)-i-3 != 10 {
		return "", false
	}
	return name[i+3:], true
}

// waitTurn waits until path, created on session sess, is the first node of
// dir: it watches the node just before it and checks again when that one
// goes or the session state changes. errNodeGone when path is gone (its
// session expired); ctx's error, or ErrClosed.
func (s *Store) waitTurn(ctx context.Context, dir, path string, sess int64) error {
	self := path[strings.LastIndex(path, "/")+1:]
	for {
		stateCh := s.stateChanged()
		if s.connected() && s.conn.SessionID() != sess {
			return errNodeGone
		}
		kids, err := s.children(ctx, dir)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, configsvc.ErrClosed) {
				return err
			}
			if werr := s.waitState(ctx, stateCh); werr != nil {
				return werr
			}
			continue
		}
		type node struct{ name, seq string }
		var nodes []node
		for _, k := range kids {
			if seq, ok := electionSeq(k); ok {
				nodes = append(nodes, node{k, seq})
			}
		}
		sort.Slice(nodes, func(i, j int) bool { return nodes[i].seq < nodes[j].seq })
		idx := -1
		for i, n := range nodes {
			if n.name == self {
				idx = i
			}
		}
		switch {
		case idx < 0:
			return errNodeGone
		case idx == 0:
			return nil
		}
		pred := dir + "/" + nodes[idx-1].name
		type watch struct {
			ok bool
			ch <-chan zk.Event
		}
		w, err := call(ctx, s, func(c *zk.Conn) (watch, error) {
			ok, _, ch, err := c.ExistsW(pred)
			return watch{ok, ch}, err
		})
		if err != nil || !w.ok {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, configsvc.ErrClosed) {
				return err
			}
			continue // the predecessor went meanwhile, or a hiccup: look again
		}
		select {
		case <-w.ch:
		case <-stateCh:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.bg.Done():
			return configsvc.ErrClosed
		}
	}
}

// waitState waits for the next session state change, ctx or Close.
func (s *Store) waitState(ctx context.Context, stateCh <-chan struct{}) error {
	select {
	case <-stateCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.bg.Done():
		return configsvc.ErrClosed
	}
}

// holdLead returns when the leadership of path, created on session sess,
// ends: ctx ends, the store closes, the node is deleted, the session
// changes, or the connection stays down for leadDownFor.
func (s *Store) holdLead(ctx context.Context, path string, sess int64) {
	var nodeCh <-chan zk.Event // nil while no watch is armed
	var down *time.Timer
	var downC <-chan time.Time
	defer func() {
		if down != nil {
			down.Stop()
		}
	}()
	for {
		stateCh := s.stateChanged()
		if s.connected() {
			if s.conn.SessionID() != sess {
				s.log.Warn("zkstore: election lost: the session expired", "node", path)
				return
			}
			if down != nil {
				down.Stop()
				down, downC = nil, nil
			}
			if nodeCh == nil {
				actx, cancel := s.opCtx(ctx)
				type watch struct {
					ok bool
					ch <-chan zk.Event
				}
				w, err := call(actx, s, func(c *zk.Conn) (watch, error) {
					ok, _, ch, err := c.ExistsW(path)
					return watch{ok, ch}, err
				})
				cancel()
				switch {
				case err == nil && !w.ok:
					s.log.Warn("zkstore: election lost: the node is gone", "node", path)
					return
				case err == nil:
					nodeCh = w.ch
				case ctx.Err() != nil || errors.Is(err, configsvc.ErrClosed):
					return
				}
			}
		} else if down == nil {
			down = time.NewTimer(s.leadDownFor())
			downC = down.C
		}
		select {
		case ev := <-nodeCh:
			nodeCh = nil
			if ev.Type == zk.EventNodeDeleted || ev.Type == zk.EventNotWatching {
				s.log.Warn("zkstore: election lost", "node", path, "event", ev.Type.String())
				return
			}
		case <-stateCh:
		case <-downC:
			s.log.Warn("zkstore: election given up: no connection", "node", path, "for", s.leadDownFor())
			return
		case <-ctx.Done():
			return
		case <-s.bg.Done():
			return
		}
	}
}

// dropElectionNode deletes path, created on session sess, in the
// background, retrying until it is gone, the session changed (which
// removed it) or the store closes: a node left behind on a live session
// would keep every later campaigner waiting.
func (s *Store) dropElectionNode(path string, sess int64) {
	s.bg.Go(func() {
		backoff := electionBackoffMin
		for {
			if err := s.waitSession(s.life); err != nil {
				return
			}
			if s.conn.SessionID() != sess {
				return
			}
			ctx, cancel := s.opCtx(s.life)
			err := s.do(ctx, func(c *zk.Conn) error { return c.Delete(path, -1) })
			cancel()
			if err == nil || errors.Is(err, zk.ErrNoNode) || errors.Is(err, configsvc.ErrClosed) {
				return
			}
			if s.bg.Sleep(s.life, backoff) != nil {
				return
			}
			backoff = min(2*backoff, electionBackoffMax)
		}
	})
}

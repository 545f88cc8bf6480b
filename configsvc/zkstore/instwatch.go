package zkstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
)

// Instance watches. go-zookeeper keeps one channel per watching call until
// the watch fires, and cannot remove a watch; a watcher that re-armed every
// instance's data watch on every change, or that left its watches behind
// when it ended, would pile up channels with every flap of any instance.
// So the store holds one instHub per service watched, shared by every
// WatchInstances of that service: one child watch on instances/{svc} and
// one data watch per instance node, each re-armed only after it fired. A
// hub stops when its last subscriber leaves and keeps its armed watches for
// the next one.

// instWatches is the store's set of instance hubs.
type instWatches struct {
	mu    sync.Mutex
	hubs  map[string]*instHub
	armed atomic.Int64 // watch channels the hubs hold in the client
}

type instHub struct {
	s   *Store
	svc string

	// Guarded by s.watches.mu.
	subs    map[*instSub]struct{}
	running bool
	last    *configsvc.InstancesEvent // newest list sent since the hub (re)started
	wake    chan struct{}             // a subscriber left (buffer 1)

	// Owned by the hub's goroutine while running.
	child <-chan zk.Event
	nodes map[string]*instNode
	dirty bool // the list changed since it was last sent
}

type instNode struct {
	data []byte
	inst *configsvc.Instance // nil when data does not decode
	ch   <-chan zk.Event     // nil: the data watch must be armed again
}

// instSub is one WatchInstances call.
type instSub struct {
	slot chan subEvent // the newest event not yet taken (buffer 1)
}

type subEvent struct {
	ev    configsvc.InstancesEvent
	final bool // the watch ends after this event
}

// WatchInstances sends the full live instance list of svc now and after
// every change (an instance joining, leaving or updating its data), until
// ctx ends or the store closes; then the channel is closed. Every watch of
// one service on one store shares one child watch on its instances node
// and one data watch per instance, each re-armed only after it fired, so
// the client's memory stays bounded however often instances come and go.
// Only the newest list matters: a slow receiver skips intermediate lists.
// Trouble is sent as an event with Err (ErrUnavailable, retried;
// ErrNotFound when the service does not exist, which ends the watch).
func (s *Store) WatchInstances(ctx context.Context, svc string) <-chan configsvc.InstancesEvent {
	if err := configsvc.ValidateServiceName(svc); err != nil {
		return failedWatch(configsvc.InstancesEvent{Err: fmt.Errorf("zkstore: watch instances: %w", err)})
	}
	closed := failedWatch(configsvc.InstancesEvent{Err: fmt.Errorf("zkstore: watch instances of %s: %w", svc, configsvc.ErrClosed)})
	sub := &instSub{slot: make(chan subEvent, 1)}
	h := s.joinHub(svc, sub)
	if h == nil {
		return closed
	}
	out := make(chan configsvc.InstancesEvent)
	if !s.bg.Go(func() {
		defer close(out)
		defer h.leave(sub)
		s.forward(ctx, sub, out)
	}) {
		h.leave(sub)
		return closed
	}
	return out
}

// forward hands sub's newest event to out until a final event, ctx's end
// or the store's.
func (s *Store) forward(ctx context.Context, sub *instSub, out chan<- configsvc.InstancesEvent) {
	var pending *subEvent
	for {
		if pending == nil {
			select {
			case e := <-sub.slot:
				pending = &e
			case <-ctx.Done():
				return
			case <-s.bg.Done():
				return
			}
		}
		select {
		case out <- pending.ev:
			if pending.final {
				return
			}
			pending = nil
		case e := <-sub.slot:
			pending = &e // a newer list replaces it
		case <-ctx.Done():
			return
		case <-s.bg.Done():
			return
		}
	}
}

// joinHub adds sub to svc's hub, starting the hub when it is not running.
// It returns nil when the store is closed.
func (s *Store) joinHub(svc string, sub *instSub) *instHub {
	w := &s.watches
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.hubs == nil {
		w.hubs = map[string]*instHub{}
	}
	h := w.hubs[svc]
	if h == nil {
		h = &instHub{s: s, svc: svc, subs: map[*instSub]struct{}{}, wake: make(chan struct{}, 1), nodes: map[string]*instNode{}}
		w.hubs[svc] = h
	}
	h.subs[sub] = struct{}{}
	if h.running {
		if h.last != nil {
			sub.slot <- subEvent{ev: *h.last}
		}
		return h
	}
	h.running, h.last, h.dirty = true, nil, true
	if !s.bg.Go(h.run) {
		h.running = false
		delete(h.subs, sub)
		return nil
	}
	return h
}

func (h *instHub) leave(sub *instSub) {
	w := &h.s.watches
	w.mu.Lock()
	delete(h.subs, sub)
	w.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// publish hands ev to every subscriber, replacing what each has not taken
// yet. A final event also ends every subscription and forgets the hub's
// state.
func (h *instHub) publish(ev configsvc.InstancesEvent, final bool) {
	w := &h.s.watches
	w.mu.Lock()
	defer w.mu.Unlock()
	if ev.Err == nil {
		h.last = &ev
	}
	for sub := range h.subs {
		select {
		case <-sub.slot:
		default:
		}
		sub.slot <- subEvent{ev: ev, final: final}
		if final {
			delete(h.subs, sub)
		}
	}
}

// stopIfIdle ends the hub's goroutine when nobody is subscribed.
func (h *instHub) stopIfIdle() bool {
	w := &h.s.watches
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(h.subs) > 0 {
		return false
	}
	h.running = false
	return true
}

func (h *instHub) run() {
	what := "zkstore: watch instances of " + h.svc
	backoff := 50 * time.Millisecond
	for {
		if h.stopIfIdle() {
			return
		}
		h.drain()
		state := h.s.stateChanged()
		err := h.arm()
		switch {
		case errors.Is(err, configsvc.ErrNotFound):
			h.reset()
			h.publish(configsvc.InstancesEvent{Err: mapErr(what, err)}, true)
			continue
		case err != nil:
			h.publish(configsvc.InstancesEvent{Err: mapErr(what, err)}, false)
			if !h.sleep(backoff, state) {
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if h.dirty {
			h.dirty = false
			h.publish(configsvc.InstancesEvent{Instances: h.list()}, false)
		}
		if !h.wait() {
			return
		}
	}
}

// sleep pauses for d, or until the session state changes, a subscriber
// leaves or the store closes; it reports false when the store closed.
func (h *instHub) sleep(d time.Duration, state <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-state:
	case <-h.wake:
	case <-h.s.bg.Done():
		return false
	}
	return true
}

// cases builds the select cases: closing, wake, the child watch, then one
// per armed node, whose ids are returned in the same order.
func (h *instHub) cases() ([]reflect.SelectCase, []string) {
	cases := []reflect.SelectCase{
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(h.s.bg.Done())},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(h.wake)},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(h.child)},
	}
	var ids []string
	for id, n := range h.nodes {
		if n.ch != nil {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(n.ch)})
			ids = append(ids, id)
		}
	}
	return cases, ids
}

// wait blocks until a watch fires, a subscriber leaves or the store
// closes; it reports false when the store closed.
func (h *instHub) wait() bool {
	cases, ids := h.cases()
	i, v, _ := reflect.Select(cases)
	switch i {
	case 0:
		return false
	case 1:
		return true
	}
	h.fired(i, v, ids)
	return true
}

// drain handles every watch that fired while the hub was not waiting.
func (h *instHub) drain() {
	for {
		cases, ids := h.cases()
		cases[0].Chan, cases[1].Chan = reflect.Value{}, reflect.Value{} // not these
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectDefault})
		i, v, _ := reflect.Select(cases)
		if i == len(cases)-1 {
			return
		}
		h.fired(i, v, ids)
	}
}

// fired handles the event of select case i (2: the child watch, 3+: ids[i-3]).
func (h *instHub) fired(i int, v reflect.Value, ids []string) {
	ev, _ := v.Interface().(zk.Event)
	armed := &h.s.watches.armed
	if ev.Type == zk.EventNotWatching {
		// The session ended or the client closed: the client dropped every
		// watch of this store at once.
		h.reset()
		return
	}
	if i == 2 {
		armed.Add(-1)
		h.child = nil
		return
	}
	id := ids[i-3]
	n := h.nodes[id]
	armed.Add(-1)
	n.ch = nil
	if ev.Type == zk.EventNodeDeleted {
		delete(h.nodes, id)
		h.dirty = true
	}
}

// reset forgets every watch: they fired or the client dropped them.
func (h *instHub) reset() {
	armed := &h.s.watches.armed
	if h.child != nil {
		armed.Add(-1)
		h.child = nil
	}
	for id, n := range h.nodes {
		if n.ch != nil {
			armed.Add(-1)
		}
		delete(h.nodes, id)
	}
	h.dirty = true
}

// arm re-arms the child watch when it fired (reading the instance ids)
// and the data watch of every instance that has none.
func (h *instHub) arm() error {
	s := h.s
	if !s.connected() {
		return fmt.Errorf("connection to ZooKeeper lost (state %v)", s.conn().State())
	}
	armed := &s.watches.armed
	parent := s.instancesPath(h.svc)
	if h.child == nil {
		kids, _, ch, err := s.conn().ChildrenW(parent)
		if errors.Is(err, zk.ErrNoNode) {
			ok, _, err := s.conn().Exists(s.refPath(configsvc.Service(h.svc)))
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("service %s does not exist: %w", h.svc, configsvc.ErrNotFound)
			}
			// The server creates it with the service; an older tree may lack it.
			if _, err := s.conn().Create(parent, nil, 0, s.acls.instParentACL(h.svc)); err != nil && !errors.Is(err, zk.ErrNodeExists) {
				return err
			}
			kids, _, ch, err = s.conn().ChildrenW(parent)
		}
		if err != nil {
			return err
		}
		armed.Add(1)
		h.child = ch
		live := make(map[string]bool, len(kids))
		for _, id := range kids {
			live[id] = true
			if h.nodes[id] == nil {
				h.nodes[id] = &instNode{}
			}
		}
		for id, n := range h.nodes {
			if !live[id] {
				// Deleted: its data watch fired before this list was read.
				if n.ch != nil {
					armed.Add(-1)
				}
				delete(h.nodes, id)
				h.dirty = true
			}
		}
	}
	var ids []string
	for id, n := range h.nodes {
		if n.ch == nil {
			ids = append(ids, id)
		}
	}
	type got struct {
		id   string
		data []byte
		ch   <-chan zk.Event
		err  error
	}
	// Pipelined: the client sends them on its one connection at once. The
	// hub waits for every answer (the client fails them when the connection
	// drops), so no armed channel goes unaccounted for.
	res := make(chan got, len(ids))
	sem := make(chan struct{}, 64)
	started := 0
	for _, id := range ids {
		sem <- struct{}{}
		if !s.bg.Go(func() {
			d, _, ch, err := s.conn().GetW(parent + "/" + id)
			<-sem
			res <- got{id, d, ch, err}
		}) {
			<-sem
			break
		}
		started++
	}
	var firstErr error
	for range started {
		g := <-res
		n := h.nodes[g.id]
		switch {
		case g.err == nil:
			armed.Add(1)
			n.ch = g.ch
			if !bytes.Equal(n.data, g.data) || n.inst == nil {
				n.data, n.inst = g.data, nil
				if inst, err := decode[configsvc.Instance]("instance", g.data); err == nil {
					n.inst = inst
				} else {
					s.log.Warn("zkstore: instance node not readable; left out of the list", "instance", parent+"/"+g.id, "err", err)
				}
				h.dirty = true
			}
		case errors.Is(g.err, zk.ErrNoNode):
			delete(h.nodes, g.id) // left meanwhile; the child watch fires
			h.dirty = true
		case firstErr == nil:
			firstErr = g.err
		}
	}
	if started < len(ids) && firstErr == nil {
		firstErr = configsvc.ErrClosed
	}
	return firstErr
}

// list returns the instances, sorted by id.
func (h *instHub) list() []configsvc.Instance {
	ids := make([]string, 0, len(h.nodes))
	for id, n := range h.nodes {
		if n.inst != nil {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	out := make([]configsvc.Instance, len(ids))
	for i, id := range ids {
		out[i] = *h.nodes[id].inst
		out[i].Labels = cloneLabels(out[i].Labels)
	}
	return out
}

func cloneLabels(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

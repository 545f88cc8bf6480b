package sdk

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// follow keeps one service or group (group "" is the service) in step with
// the store: it watches from the position the client holds and hands every
// revision, in order and without gaps, to the applier. When resync is set,
// or the watch reports that the revisions it needs were compacted, it loads
// a fresh snapshot first; the applier refuses one below the revision held
// (a store or server that has not caught up: the watch from the revision
// held then waits for it). When the watch reports the history rewritten,
// the snapshot it loads is applied whatever its revision; when it reports
// the ref deleted, one below the revision held is (the ref was created
// again). The ref's grays come with the snapshots and as GraysChanged
// events (see watchOnce). It returns when ctx ends.
func (c *Client) follow(ctx context.Context, group string, from position, resync bool) {
	ref := refOf(c.cfg.Service, group)
	log := c.log.With("ref", refString(ref))
	bo := api.Backoff{Min: c.cfg.RetryMin, Max: c.cfg.RetryMax}
	failures := 0
	rewrite, recreated := false, false
	grays := c.heldOf(group).grays
	for ctx.Err() == nil {
		if resync {
			l, err := c.loadRef(ctx, ref, grays.in)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				failures++
				if failures == 1 {
					log.Warn("sdk: loading from the store failed, retrying", "err", err)
				} else {
					log.Debug("sdk: loading from the store failed, retrying", "err", err, "attempt", failures)
				}
				bo.Wait(ctx)
				continue
			}
			h, ok := c.sendWait(ctx, update{group: group, snap: &l, rewrite: rewrite, recreated: recreated})
			if !ok {
				return
			}
			from, grays = h.pos, h.grays
			resync, rewrite, recreated, failures = false, false, false, 0
			bo.Reset()
		}
		src, err := c.source(ctx)
		if err != nil {
			resync = true
			continue
		}
		var end watchEnd
		from, grays, end = c.watchOnce(ctx, src, ref, from, grays, log)
		switch end {
		case endStopped:
			return
		case endReload:
			resync = true
		case endRewritten:
			resync, rewrite = true, true
		case endDeleted:
			resync, recreated = true, true
		}
		if !bo.Wait(ctx) {
			return
		}
	}
}

// loadRef loads ref's state (loadFrom), connecting the transport first
// when needed; known holds the content of grays loaded before.
func (c *Client) loadRef(ctx context.Context, ref configsvc.Ref, known map[string]*grayHeld) (loaded, error) {
	octx, cancel := context.WithTimeout(ctx, c.cfg.OpenTimeout)
	defer cancel()
	src, err := c.source(octx)
	if err != nil {
		return loaded{}, err
	}
	return c.loadFrom(octx, src, ref, known)
}

// loadFrom loads ref's state from src: main at the head and the grays
// active there, with the content of those this instance is in (from
// known when it has them).
func (c *Client) loadFrom(ctx context.Context, src *transport, ref configsvc.Ref, known map[string]*grayHeld) (loaded, error) {
	l, err := src.load(ctx, ref)
	if err != nil {
		return loaded{}, err
	}
	if l.grays.in, err = c.members(ctx, src, ref, l.grays.summaries, known); err != nil {
		return loaded{}, err
	}
	return l, nil
}

// watchEnd says why a watch ended.
type watchEnd int

const (
	endRetry     watchEnd = iota // the watch ended; watch again from the position held
	endReload                    // reload a snapshot first (compacted, gap, deleted)
	endRewritten                 // the history was rewritten: reload and apply whatever it holds
	endDeleted                   // the ref was deleted: reload once it exists; a lower revision is a new history
	endStopped                   // ctx ended
)

// watchOnce runs one watch of ref from position from, holding the gray
// state grays, until it ends. It returns the position of the last revision
// handed on, the gray state held, and why it ended.
//
// Grays: every GraysChanged event of the watch is handed on, with the
// content of the grays this instance is in loaded first (a load that
// fails ends the watch for a reload). The head is read once right after
// the watch started, for the links (a service) and the grays: a change
// between the state held and the watch's baseline would otherwise go
// unnoticed. Its grays are handed on once the watch has delivered the
// head's revision (so a promote's revision always comes before its gray
// leaves), unless a GraysChanged event comes first: the watch reports
// every change after its baseline, so the event is at least as new.
func (c *Client) watchOnce(ctx context.Context, src *transport, ref configsvc.Ref, from position, grays graySet, log *slog.Logger) (position, graySet, watchEnd) {
	group := ""
	if ref.Kind == configsvc.KindGroup {
		group = ref.Name
	}
	stopped := func() (position, graySet, watchEnd) { return from, grays, endStopped }
	reload := func(end watchEnd) (position, graySet, watchEnd) {
		if ctx.Err() != nil {
			return stopped()
		}
		return from, grays, end
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := src.store.Watch(wctx, ref, from.rev, configsvc.Expect(from.id))
	defer func() {
		cancel()
		for range ch {
		}
	}()
	// A service's links as they are now: a change made before the watch
	// took its baseline would otherwise go unseen. The grays need no read:
	// every store's watch sends its baseline set as its first GraysChanged.
	if group == "" {
		hctx, hcancel := context.WithTimeout(ctx, c.cfg.OpenTimeout)
		head, err := src.store.Head(hctx, ref)
		hcancel()
		c.mu.Lock()
		changed := err == nil && !slices.Equal(sortedLinks(head.Links), c.links)
		c.mu.Unlock()
		if changed && !c.send(ctx, update{linksChanged: true, links: head.Links}) {
			return stopped()
		}
	}
	// moveGrays hands on a new set of active grays; false when the watch
	// must end (ctx ended, or a gray's content could not be read).
	moveGrays := func(summaries []configsvc.GraySummary) bool {
		in, err := c.members(ctx, src, ref, summaries, grays.in)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("sdk: reading a gray's content failed, reloading", "err", err)
			}
			return false
		}
		h, ok := c.sendWait(ctx, update{group: group, grays: &graySet{summaries: summaries, in: in}})
		if ok {
			grays = h.grays
		}
		return ok
	}
	interrupted := false
	for ev := range ch {
		if ctx.Err() != nil {
			return stopped()
		}
		switch {
		case ev.Err != nil:
			switch {
			case errors.Is(ev.Err, configsvc.ErrUnavailable):
				if !interrupted {
					log.Warn("sdk: watch interrupted, resuming", "err", ev.Err, "revision", from.rev)
					c.cfg.Metrics.Reconnect(src.name)
				}
				interrupted = true
			case errors.Is(ev.Err, configsvc.ErrRewritten):
				log.Warn("sdk: the store's history was rewritten; reloading the snapshot as a new state", "revision", from.rev, "err", ev.Err)
				return reload(endRewritten)
			case errors.Is(ev.Err, configsvc.ErrCompacted):
				log.Warn("sdk: revisions compacted while away, reloading the snapshot", "revision", from.rev)
				return reload(endReload)
			case errors.Is(ev.Err, configsvc.ErrNotFound):
				// Created again under the same name, it is another history:
				// its revisions start over below the one held.
				log.Warn("sdk: the service or group was deleted; keeping the configuration held until it exists again", "revision", from.rev, "err", ev.Err)
				return reload(endDeleted)
			default:
				log.Warn("sdk: watch ended, reloading", "err", ev.Err, "revision", from.rev)
				return reload(endReload)
			}
		case ev.Revision != nil:
			if interrupted {
				log.Info("sdk: watch resumed", "revision", ev.Revision.Number)
				interrupted = false
			}
			n := ev.Revision.Number
			if n <= from.rev {
				continue
			}
			if n != from.rev+1 {
				log.Warn("sdk: revision gap in watch, reloading the snapshot", "have", from.rev, "got", n)
				return reload(endReload)
			}
			if !c.send(ctx, update{group: group, rev: ev.Revision}) {
				return stopped()
			}
			from = position{rev: n, id: configsvc.Identity{Generation: cmp.Or(ev.Revision.Generation, from.id.Generation), PublishID: ev.Revision.PublishID}}
		case ev.LinksChanged:
			if group == "" && !c.send(ctx, update{linksChanged: true, links: ev.Links}) {
				return stopped()
			}
		case ev.GraysChanged:
			if configsvc.SameGrays(ev.Grays, grays.summaries) {
				continue // a stream that opened again repeats the set held
			}
			if !moveGrays(ev.Grays) {
				return reload(endReload)
			}
		}
	}
	if ctx.Err() != nil {
		return stopped()
	}
	return from, grays, endRetry
}

package sdk

import (
	"context"
	"errors"
	"log/slog"
	"slices"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/lifecycle"
)

// follow keeps one service or group (group "" is the service) in step with
// the store: it watches from the revision the client holds and hands every
// revision, in order and without gaps, to the applier. When resync is set,
// or the watch reports that the revisions it needs were compacted, it loads
// a fresh snapshot first. It returns when ctx ends.
func (c *Client) follow(ctx context.Context, group string, from int64, resync bool) {
	ref := refOf(c.cfg.Service, group)
	log := c.log.With("ref", refString(ref))
	bo := backoff{min: c.cfg.RetryMin, max: c.cfg.RetryMax}
	failures := 0
	for ctx.Err() == nil {
		if resync {
			l, err := c.loadRef(ctx, ref)
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
				_ = lifecycle.Sleep(ctx, bo.next())
				continue
			}
			if !c.send(ctx, update{group: group, snap: &l}) {
				return
			}
			from, resync, failures = l.revision, false, 0
			bo.reset()
		}
		src, err := c.source(ctx)
		if err != nil {
			resync = true
			continue
		}
		var ok bool
		from, resync, ok = c.watchOnce(ctx, src, ref, from, log)
		if !ok {
			return
		}
		if lifecycle.Sleep(ctx, bo.next()) != nil {
			return
		}
	}
}

func (c *Client) loadRef(ctx context.Context, ref configsvc.Ref) (loaded, error) {
	octx, cancel := context.WithTimeout(ctx, c.cfg.OpenTimeout)
	defer cancel()
	src, err := c.source(octx)
	if err != nil {
		return loaded{}, err
	}
	return src.load(octx, ref)
}

// watchOnce runs one watch of ref from revision from until it ends. It
// returns the last revision handed on, whether a snapshot is needed before
// watching again, and false when ctx ended.
func (c *Client) watchOnce(ctx context.Context, src source, ref configsvc.Ref, from int64, log *slog.Logger) (int64, bool, bool) {
	group := ""
	if ref.Kind == configsvc.KindGroup {
		group = ref.Name
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := src.watch(wctx, ref, from)
	defer func() {
		cancel()
		for range ch {
		}
	}()
	if lr, ok := src.(linkReader); ok && group == "" {
		lctx, lcancel := context.WithTimeout(ctx, c.cfg.OpenTimeout)
		links, err := lr.links(lctx, ref)
		lcancel()
		c.mu.Lock()
		changed := err == nil && !slices.Equal(sortedLinks(links), c.links)
		c.mu.Unlock()
		if changed && !c.send(ctx, update{linksChanged: true, links: links}) {
			return from, false, false
		}
	}
	interrupted := false
	for ev := range ch {
		if ctx.Err() != nil {
			return from, false, false
		}
		switch {
		case ev.Err != nil:
			switch {
			case errors.Is(ev.Err, configsvc.ErrUnavailable):
				if !interrupted {
					log.Warn("sdk: watch interrupted, resuming", "err", ev.Err, "revision", from)
					c.cfg.Metrics.Reconnect(src.transport())
				}
				interrupted = true
			case errors.Is(ev.Err, configsvc.ErrCompacted):
				log.Warn("sdk: revisions compacted while away, reloading the snapshot", "revision", from)
				return from, true, ctx.Err() == nil
			default:
				log.Warn("sdk: watch ended, reloading", "err", ev.Err, "revision", from)
				return from, true, ctx.Err() == nil
			}
		case ev.Revision != nil:
			if interrupted {
				log.Info("sdk: watch resumed", "revision", ev.Revision.Number)
				interrupted = false
			}
			n := ev.Revision.Number
			if n <= from {
				continue
			}
			if n != from+1 {
				log.Warn("sdk: revision gap in watch, reloading the snapshot", "have", from, "got", n)
				return from, true, ctx.Err() == nil
			}
			if !c.send(ctx, update{group: group, rev: ev.Revision}) {
				return from, false, false
			}
			from = n
		case ev.LinksChanged:
			if group == "" && !c.send(ctx, update{linksChanged: true, links: ev.Links}) {
				return from, false, false
			}
		}
	}
	return from, false, ctx.Err() == nil
}

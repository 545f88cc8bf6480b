package zkstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
)

// Link makes service svc use shared group group. One transaction checks
// that the group exists, creates services/{svc}/links/{group} and
// shared/{group}/users/{svc}, and adds the group to the service's head
// (version-checked), so watchers of the service see the link change.
// Linking twice is not an error. ErrNotFound if either does not exist.
func (s *Store) Link(ctx context.Context, svc, group string) error {
	return s.changeLink(ctx, svc, group, true)
}

// Unlink removes the link in both directions and from the service's head,
// in one transaction. ErrNotFound if the link did not exist.
func (s *Store) Unlink(ctx context.Context, svc, group string) error {
	return s.changeLink(ctx, svc, group, false)
}

func (s *Store) changeLink(ctx context.Context, svc, group string, link bool) error {
	verb := "unlink"
	if link {
		verb = "link"
	}
	what := fmt.Sprintf("zkstore: %s service %s and group %s", verb, svc, group)
	if err := configsvc.ValidateServiceName(svc); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := configsvc.ValidateGroupName(group); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	ref := configsvc.Service(svc)
	unsure := false // an earlier attempt may have landed
	for attempt := 0; attempt < maxPublishAttempts; attempt++ {
		// Read after a sync the first time (the answers "already linked"
		// and "not linked" must hold for the ensemble, not a lagging
		// server) and after an attempt of unknown outcome (to see what the
		// leader committed).
		read := s.readHead
		if attempt == 0 || unsure {
			read = s.readHeadSynced
		}
		h, stat, err := read(ctx, ref)
		if err != nil {
			if unsure && !errors.Is(err, configsvc.ErrNotFound) {
				return fmt.Errorf("%s: the change may have been applied (%v): %w", what, mapErr("", err), configsvc.ErrOutcomeUnknown)
			}
			return mapErr(what, err)
		}
		linked := slices.Contains(h.Links, group)
		var ops []any
		switch {
		case link && linked:
			return nil
		case !link && !linked:
			if unsure {
				return nil
			}
			return fmt.Errorf("%s: not linked: %w", what, configsvc.ErrNotFound)
		case link:
			if len(h.Links) >= s.cfg.Limits.LinksPerService {
				return fmt.Errorf("%s: %w", what, &configsvc.CountError{What: "shared groups linked to service " + svc, Count: int64(len(h.Links)), Limit: int64(s.cfg.Limits.LinksPerService)})
			}
			h.Links = append(h.Links, group)
			sort.Strings(h.Links)
			ops = []any{
				&zk.CheckVersionRequest{Path: s.refPath(configsvc.Group(group)), Version: -1},
				&zk.CreateRequest{Path: s.linkPath(svc, group), Acl: s.acl},
				&zk.CreateRequest{Path: s.userPath(group, svc), Acl: s.acl},
			}
		default:
			h.Links = slices.DeleteFunc(h.Links, func(g string) bool { return g == group })
			ops = []any{
				&zk.DeleteRequest{Path: s.linkPath(svc, group), Version: -1},
				&zk.DeleteRequest{Path: s.userPath(group, svc), Version: -1},
			}
		}
		if len(h.Links) == 0 {
			h.Links = nil
		}
		ops = append(ops, &zk.SetDataRequest{Path: s.headPath(ref), Data: mustJSON(h), Version: stat.Version})
		_, err = s.multi(ctx, ops...)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNodeExists):
			continue // the head moved or a concurrent link landed: re-read
		case errors.Is(err, zk.ErrNoNode):
			if link {
				return fmt.Errorf("%s: group does not exist: %w", what, configsvc.ErrNotFound)
			}
			return fmt.Errorf("%s: %w", what, configsvc.ErrNotFound)
		case uncertain(err) && ctx.Err() == nil:
			unsure = true
			_ = s.bg.Sleep(ctx, 50*time.Millisecond)
			continue // re-read: the change may have landed
		case unsure || uncertain(err):
			return fmt.Errorf("%s: the change may have been applied; read the links to find out (%v): %w", what, mapErr("", err), configsvc.ErrOutcomeUnknown)
		default:
			return mapErr(what, err)
		}
	}
	if unsure {
		return fmt.Errorf("%s: gave up after %d attempts, and the head never showed whether an earlier one was applied: %w", what, maxPublishAttempts, configsvc.ErrOutcomeUnknown)
	}
	return fmt.Errorf("%s: the service head kept changing: %w", what, configsvc.ErrConflict)
}

// Users returns the services linked to group, sorted, as a linearizable
// read (after a sync). ErrNotFound if the group does not exist.
func (s *Store) Users(ctx context.Context, group string) ([]string, error) {
	what := "zkstore: users of group " + group
	if err := configsvc.ValidateGroupName(group); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if err := s.synced(ctx); err != nil {
		return nil, mapErr(what, err)
	}
	users, err := s.children(ctx, s.refPath(configsvc.Group(group))+"/users")
	if err != nil {
		return nil, mapErr(what, err)
	}
	sort.Strings(users)
	if users == nil {
		users = []string{}
	}
	return users, nil
}

package sdk

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/sluicehq/sluice/configsvc"
)

// Gray releases (docs/gray.md): the head of a service or group carries the
// summaries of its active grays (id, files, selector, version). The client
// decides its own membership with configsvc.Selector.Matches (its instance
// id and labels), loads the content of the grays it is in, and applies
// main + those grays: a gray's version of a file wins, a gray's deletion
// removes the file. Everything else — bindings, keep-last-good, order,
// cache, callbacks — works on that effective state as it does on main.
// Gray content never changes once created (only the selector and the
// rollout state do, bumping the version), so content loaded once is kept
// while the gray stays in the head.

// grayHeld is a gray this instance is in, with its content.
type grayHeld struct {
	summary configsvc.GraySummary
	changes map[string]configsvc.Change // by file name within the ref
}

// graySet is the gray state of one service or group: every active gray's
// summary (sorted by id) and the ones this instance is in, with content.
type graySet struct {
	summaries []configsvc.GraySummary
	in        map[string]*grayHeld
}

// heldGray returns the gray of in that holds file name, or nil. At most
// one active gray holds a file of a ref.
func heldGray(in map[string]*grayHeld, name string) *grayHeld {
	for _, g := range in {
		if _, ok := g.changes[name]; ok {
			return g
		}
	}
	return nil
}

// grayFiles returns the names of the files the grays of in hold.
func grayFiles(in map[string]*grayHeld) []string {
	var out []string
	for _, g := range in {
		for name := range g.changes {
			out = append(out, name)
		}
	}
	return out
}

// movedGrayFiles returns the files whose effective content may differ
// between holding the grays of a and those of b: the files of each gray
// in one but not the other, or holding other files.
func movedGrayFiles(a, b map[string]*grayHeld) []string {
	var out []string
	add := func(from, other map[string]*grayHeld) {
		for id, g := range from {
			if o := other[id]; o != nil && slices.Equal(o.summary.Files, g.summary.Files) {
				continue
			}
			for name := range g.changes {
				out = append(out, name)
			}
		}
	}
	add(a, b)
	add(b, a)
	return out
}

// moveGraysLocked installs set as rs's gray state and records in step
// what changed for the instance: the grays it joined and left, and
// whether its grays (or their versions) moved at all.
func (c *Client) moveGraysLocked(step *stepResult, rs *refState, set graySet) {
	for id, g := range set.in {
		old := rs.in[id]
		if old == nil {
			step.joined = append(step.joined, id)
		}
		if old == nil || old.summary.Version != g.summary.Version {
			step.graysMoved = true
		}
	}
	for id := range rs.in {
		if set.in[id] == nil {
			step.left = append(step.left, id)
			step.graysMoved = true
		}
	}
	sort.Strings(step.joined)
	sort.Strings(step.left)
	rs.grays, rs.in = set.summaries, set.in
}

// inCohort reports whether this instance is in the cohort of the gray s
// summarizes. A client without an instance id (NoRegister and no
// Instance.ID) is matched by its labels only: a percent of nobody's id
// means nothing.
func (c *Client) inCohort(s configsvc.GraySummary) bool {
	sel := s.Selector
	if c.cfg.Instance.ID == "" {
		sel = configsvc.Selector{Labels: sel.Labels}
	}
	return sel.Matches(s.ID, configsvc.Instance{Service: c.cfg.Service, ID: c.cfg.Instance.ID, Labels: c.cfg.Instance.Labels})
}

// members returns the grays of summaries this instance is in, with their
// content: from known when it holds the gray with the same files, else
// read from the store (Gray; bounded by OpenTimeout). A gray the store no
// longer has (dropped from the history of ended grays) is left out; it has
// ended, and its summary leaves the head soon after. Other read errors are
// returned: the caller retries.
func (c *Client) members(ctx context.Context, src *transport, ref configsvc.Ref, summaries []configsvc.GraySummary, known map[string]*grayHeld) (map[string]*grayHeld, error) {
	var out map[string]*grayHeld
	for _, s := range summaries {
		if !c.inCohort(s) {
			continue
		}
		if out == nil {
			out = map[string]*grayHeld{}
		}
		if k := known[s.ID]; k != nil && slices.Equal(k.summary.Files, s.Files) {
			out[s.ID] = &grayHeld{summary: s, changes: k.changes}
			continue
		}
		gctx, cancel := context.WithTimeout(ctx, c.cfg.OpenTimeout)
		g, err := src.store.Gray(gctx, ref, s.ID)
		cancel()
		if errors.Is(err, configsvc.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("gray %s of %s: %w", s.ID, ref, err)
		}
		h := &grayHeld{summary: s, changes: make(map[string]configsvc.Change, len(g.Changes))}
		for _, ch := range g.Changes {
			h.changes[ch.File] = ch
		}
		out[s.ID] = h
	}
	return out, nil
}

// Grays returns the ids of the grays this instance is in and applies
// (those of the service and of its linked groups), sorted; nil when none.
// A gray whose content a binding rejected is listed too: the instance is
// in its cohort and reports the rejection (see docs/sdk.md).
func (c *Client) Grays() []string { return slices.Clone(c.view.Load().grays) }

// grayIDsLocked returns the ids of the grays the client is in, sorted.
func (c *Client) grayIDsLocked() []string {
	var out []string
	for _, rs := range c.refs {
		for id := range rs.in {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// grayStatusesLocked returns what the instance reports about each gray
// it is in (configsvc.Instance.Grays): applied, or rejected with the
// reason of the first file (by name) a binding refused; nil when it is in
// none.
func (c *Client) grayStatusesLocked() map[string]configsvc.GrayStatus {
	var out map[string]configsvc.GrayStatus
	for _, rs := range c.refs {
		for id, g := range rs.in {
			if out == nil {
				out = map[string]configsvc.GrayStatus{}
			}
			out[id] = configsvc.GrayStatus{Status: configsvc.GrayApplied, Version: g.summary.Version}
		}
	}
	keys := slices.Sorted(maps.Keys(c.rejects))
	for _, k := range keys {
		r := c.rejects[k]
		st, ok := out[r.gray]
		if r.gray == "" || !ok || st.Status == configsvc.GrayRejected {
			continue
		}
		st.Status, st.Reason = configsvc.GrayRejected, configsvc.Truncate(r.err.Error(), configsvc.MaxInstanceErrorLen)
		out[r.gray] = st
	}
	return limitGrayReports(out, configsvc.MaxInstanceGrays)
}

// limitGrayReports returns reports with at most max entries (an instance
// record holding more is refused): the rejections first, then by id.
// An instance in more grays than that (16 per service and per linked
// group) reports the rest as nothing, which the cohort views show as
// pending.
func limitGrayReports(reports map[string]configsvc.GrayStatus, max int) map[string]configsvc.GrayStatus {
	if len(reports) <= max {
		return reports
	}
	ids := slices.Collect(maps.Keys(reports))
	sort.Slice(ids, func(i, j int) bool {
		ri, rj := reports[ids[i]].Status == configsvc.GrayRejected, reports[ids[j]].Status == configsvc.GrayRejected
		if ri != rj {
			return ri
		}
		return ids[i] < ids[j]
	})
	out := make(map[string]configsvc.GrayStatus, max)
	for _, id := range ids[:max] {
		out[id] = reports[id]
	}
	return out
}

// cachedGray is a gray kept in the cache: the gray the writer was in, its
// content, and main's content of the files it holds (Under), so that a
// process that is not in its cohort (another instance sharing the cache)
// restores main for them.
type cachedGray struct {
	Ref     string                `json:"ref,omitempty"` // "" the service, else the linked group
	Summary configsvc.GraySummary `json:"summary"`
	Changes []configsvc.Change    `json:"changes"`
	Under   []cachedFile          `json:"under,omitempty"`
}

// cachedFile is main's content of a file a gray holds; Absent when main
// does not have it.
type cachedFile struct {
	File    string `json:"file"`
	Content []byte `json:"content,omitempty"`
	Absent  bool   `json:"absent,omitempty"`
}

// cachedGraysLocked returns the grays the client is in, for the cache.
func (c *Client) cachedGraysLocked() []cachedGray {
	var out []cachedGray
	for g, rs := range c.refs {
		for _, id := range slices.Sorted(maps.Keys(rs.in)) {
			h := rs.in[id]
			cg := cachedGray{Ref: g, Summary: h.summary}
			for _, name := range slices.Sorted(maps.Keys(h.changes)) {
				cg.Changes = append(cg.Changes, h.changes[name])
				content, ok := rs.files[name]
				cg.Under = append(cg.Under, cachedFile{File: name, Content: content, Absent: !ok})
			}
			out = append(out, cg)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Ref != out[j].Ref {
			return out[i].Ref < out[j].Ref
		}
		return out[i].Summary.ID < out[j].Summary.ID
	})
	return out
}

// cachedFiles returns the effective files of a state read from the cache
// as this instance sees them: the writer's, except that main's content
// replaces that of a gray this instance is not in (the cache was written
// by another instance sharing it).
func (c *Client) cachedFiles(st *cachedState) map[string][]byte {
	files := maps.Clone(st.Files)
	for _, cg := range st.Grays {
		if c.inCohort(cg.Summary) {
			continue
		}
		for _, u := range cg.Under {
			if k := key(cg.Ref, u.File); u.Absent {
				delete(files, k)
			} else {
				files[k] = u.Content
			}
		}
	}
	return files
}

// restoreGrays holds again the cached grays this instance is in, on the
// refs loadCached built from cachedFiles: each ref's main files get main's
// content back for the files such a gray holds (the effective files keep
// the gray's).
func (c *Client) restoreGrays(st *cachedState) {
	for _, cg := range st.Grays {
		rs := c.refs[cg.Ref]
		if rs == nil || !c.inCohort(cg.Summary) {
			continue
		}
		for _, u := range cg.Under {
			if u.Absent {
				delete(rs.files, u.File)
			} else {
				rs.files[u.File] = u.Content
			}
		}
		h := &grayHeld{summary: cg.Summary, changes: make(map[string]configsvc.Change, len(cg.Changes))}
		for _, ch := range cg.Changes {
			h.changes[ch.File] = ch
		}
		if rs.in == nil {
			rs.in = map[string]*grayHeld{}
		}
		rs.in[cg.Summary.ID] = h
		rs.grays = configsvc.WithGraySummary(rs.grays, cg.Summary)
	}
}

package zkstore

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/configsvc"
)

// Node paths; docs/zookeeper-layout.md shows the tree.

func (s *Store) refPath(ref configsvc.Ref) string {
	if ref.Kind == configsvc.KindGroup {
		return s.cfg.Root + "/shared/" + ref.Name
	}
	return s.cfg.Root + "/services/" + ref.Name
}

func (s *Store) kindPath(kind configsvc.Kind) string {
	if kind == configsvc.KindGroup {
		return s.cfg.Root + "/shared"
	}
	return s.cfg.Root + "/services"
}

func (s *Store) headPath(ref configsvc.Ref) string { return s.refPath(ref) + "/head" }

func (s *Store) revPath(ref configsvc.Ref, n int64) string {
	return fmt.Sprintf("%s/revisions/%010d", s.refPath(ref), n)
}

// contentPath is the node holding file's content as written by revision n.
func (s *Store) contentPath(ref configsvc.Ref, n int64, file string) string {
	return fmt.Sprintf("%s/content/%010d.%s", s.refPath(ref), n, file)
}

// epochPath is the node whose existence tells this incarnation of ref
// from an earlier one of the same name (see headDoc.Epoch).
func (s *Store) epochPath(ref configsvc.Ref, epoch string) string {
	return s.refPath(ref) + "/epoch-" + epoch
}

// newID returns n random bytes in hex: publish ids and epochs.
func newID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

func (s *Store) linkPath(svc, group string) string {
	return s.cfg.Root + "/services/" + svc + "/links/" + group
}

func (s *Store) userPath(group, svc string) string {
	return s.cfg.Root + "/shared/" + group + "/users/" + svc
}

func (s *Store) instancesPath(svc string) string { return s.cfg.Root + "/instances/" + svc }

func (s *Store) recordsPath(collection string) string {
	return s.cfg.Root + "/records/" + collection
}

func (s *Store) logsPath(collection string) string {
	return s.cfg.Root + "/logs/" + collection
}

// refDoc is the content of a service or group node.
type refDoc struct {
	Kind    string    `json:"kind"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Pruned: every revision below it has been physically removed.
	Pruned int64 `json:"pruned"`
}

// headDoc is the content of the head node: configsvc.Head plus the oldest
// retained revision.
type headDoc struct {
	Revision int64                         `json:"revision"`
	Files    map[string]configsvc.FileMeta `json:"files"`
	Links    []string                      `json:"links,omitempty"`
	Updated  time.Time                     `json:"updated"`
	Author   string                        `json:"author,omitempty"`
	// First is the oldest retained revision; older ones are compacted.
	First int64 `json:"first"`
	// Epoch names this incarnation of the service or group: Create makes
	// the node epoch-{Epoch} beside the head (the first publish does, for
	// one created before epochs existed) and every publish checks that it
	// still exists, so a head remembered from before a delete and re-create
	// can never pass for the current one, even at the same node version.
	Epoch string `json:"epoch,omitempty"`
	// Latest is the newest revision with its content, when that content is
	// at most latestInline bytes: a watcher then learns the revision from
	// the one read that re-arms its watch, instead of reading the revision
	// and content nodes too. Nil for larger revisions and before the first.
	Latest *latestDoc `json:"latest,omitempty"`
	// Grays summarizes the active grays (gray.go), sorted by id: every
	// change of a gray sets the head too, so watchers see it.
	Grays []configsvc.GraySummary `json:"grays,omitempty"`
}

// latestInline bounds the content a head node carries in Latest. It keeps
// the head small next to the 1 MiB jute.maxbuffer, and a publish's Multi
// (which then holds the content twice) well under it.
const latestInline = 64 << 10

// latestDoc is headDoc.Latest: a revision with content. Content is a
// string because every stored format is UTF-8 (no base64 in the head).
type latestDoc struct {
	Revision   int64          `json:"revision"`
	Author     string         `json:"author"`
	Time       time.Time      `json:"time"`
	Message    string         `json:"message"`
	RollbackOf int64          `json:"rollback_of,omitempty"`
	Changes    []inlineChange `json:"changes"`
}

type inlineChange struct {
	File    string `json:"file"`
	Content string `json:"content,omitempty"`
	Delete  bool   `json:"delete,omitempty"`
}

// inlineLatest returns rev (numbered, timed) with cs's content as a
// latestDoc, or nil when the content is over latestInline or is not UTF-8
// (a JSON string would not carry its bytes unchanged; the store does not
// validate content, so it cannot assume it is text).
func inlineLatest(rev configsvc.Revision, cs configsvc.Changeset) *latestDoc {
	size := 0
	for _, c := range cs.Changes {
		size += len(c.Content)
	}
	if size > latestInline {
		return nil
	}
	for _, c := range cs.Changes {
		if !utf8.Valid(c.Content) {
			return nil
		}
	}
	d := &latestDoc{Revision: rev.Number, Author: rev.Author, Time: rev.Time, Message: rev.Message, RollbackOf: rev.RollbackOf,
		Changes: make([]inlineChange, len(cs.Changes))}
	for i, c := range cs.Changes {
		d.Changes[i] = inlineChange{File: c.File, Content: string(c.Content), Delete: c.Delete}
	}
	return d
}

// revision returns the revision with its content.
func (d *latestDoc) revision() configsvc.Revision {
	r := configsvc.Revision{Number: d.Revision, Author: d.Author, Time: d.Time, Message: d.Message, RollbackOf: d.RollbackOf,
		Changes: make([]configsvc.Change, len(d.Changes))}
	for i, c := range d.Changes {
		r.Changes[i] = configsvc.Change{File: c.File, Delete: c.Delete}
		if !c.Delete {
			r.Changes[i].Content = []byte(c.Content)
		}
	}
	return r
}

func (h *headDoc) head(ref configsvc.Ref) configsvc.Head {
	files := make(map[string]configsvc.FileMeta, len(h.Files))
	for k, v := range h.Files {
		files[k] = v
	}
	var links []string
	if len(h.Links) > 0 {
		links = append([]string(nil), h.Links...)
	}
	return configsvc.Head{Ref: ref, Revision: h.Revision, Files: files, Links: links, Updated: h.Updated, Author: h.Author,
		Grays: slices.Clone(h.Grays)}
}

// revDoc is the content of a revision node: the revision without content,
// the publish id that lets a retried publish recognise it, and the
// manifest at this revision (file → revision whose content node holds it).
type revDoc struct {
	Revision   int64            `json:"revision"`
	Author     string           `json:"author"`
	Time       time.Time        `json:"time"`
	Message    string           `json:"message"`
	RollbackOf int64            `json:"rollback_of,omitempty"`
	PublishID  string           `json:"publish_id"`
	Changes    []changeDoc      `json:"changes"`
	Files      map[string]int64 `json:"files"`
}

type changeDoc struct {
	File   string `json:"file"`
	Delete bool   `json:"delete,omitempty"`
}

// revision returns the revision without content.
func (d *revDoc) revision() configsvc.Revision {
	r := configsvc.Revision{Number: d.Revision, Author: d.Author, Time: d.Time, Message: d.Message, RollbackOf: d.RollbackOf}
	r.Changes = make([]configsvc.Change, len(d.Changes))
	for i, c := range d.Changes {
		r.Changes[i] = configsvc.Change{File: c.File, Delete: c.Delete}
	}
	return r
}

func decode[T any](what string, data []byte) (*T, error) {
	v := new(T)
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("corrupt %s node: %v", what, err)
	}
	return v, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the store's own document types are marshalled; they always encode.
		panic(fmt.Sprintf("zkstore: marshal %T: %v", v, err))
	}
	return b
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

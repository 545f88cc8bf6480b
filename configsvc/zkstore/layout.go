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

// contentPath is the node holding file's content as written by revision
// n, for a head whose layout 2 began at revision since (headDoc.Since; 0
// for a head still in layout 1): content/{n}/{file} from since on, the
// flat content/{n}.{file} of layout 1 before it.
func (s *Store) contentPath(ref configsvc.Ref, since, n int64, file string) string {
	if since > 0 && n >= since {
		return fmt.Sprintf("%s/content/%010d/%s", s.refPath(ref), n, file)
	}
	return fmt.Sprintf("%s/content/%010d.%s", s.refPath(ref), n, file)
}

// contentDir is the node under which revision n (layout 2) keeps the
// content of the files it wrote.
func (s *Store) contentDir(ref configsvc.Ref, n int64) string {
	return fmt.Sprintf("%s/content/%010d", s.refPath(ref), n)
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

// headDoc is the content of the head node: a summary of configsvc.Head
// (revision, file count, links, time, author) plus the oldest retained
// revision. In layout 2 the manifest lives in the nodes of manifest/ (see
// manifest.go); a head still in layout 1 carries it in Files.
type headDoc struct {
	Revision int64 `json:"revision"`
	// Files is, in layout 1, the whole manifest as a JSON object
	// (file → FileMeta); in layout 2 the JSON string "manifest". A string
	// there makes a Sluice that knows only layout 1 fail to decode the
	// head ("corrupt head node") instead of reading an empty manifest and
	// publishing on top of it.
	Files   json.RawMessage `json:"files"`
	Links   []string        `json:"links,omitempty"`
	Updated time.Time       `json:"updated"`
	Author  string          `json:"author,omitempty"`
	// Count is the number of files at Revision (layout 2).
	Count int `json:"count,omitempty"`
	// Since is the first revision written in layout 2: from it on, content
	// lives under content/{N}/ and revision nodes carry no manifest. 0 in
	// layout 1. Create sets 1; migrate sets the head revision + 1.
	Since int64 `json:"since,omitempty"`
	// ManifestCversion is the child version (cversion) of manifest/ once
	// the transaction that wrote this head's revision was applied: a
	// listing of manifest/ that comes with this cversion is the manifest
	// at Revision (see manifest.go). Layout 2.
	ManifestCversion int32 `json:"manifest_cversion,omitempty"`
	// First is the oldest retained revision; older ones are compacted.
	First int64 `json:"first"`
	// Epoch names this incarnation of the service or group: Create makes
	// the node epoch-{Epoch} beside the head (the first publish does, for
	// one created before epochs existed) and every publish checks that it
	// still exists, so a head remembered from before a delete and re-create
	// can never pass for the current one, even at the same node version.
	Epoch string `json:"epoch,omitempty"`
	// Latest is the newest revision with its content, when it encodes in
	// at most latestInline bytes: a watcher then learns the revision from
	// the one read that re-arms its watch, instead of reading the revision
	// and content nodes too. Nil for larger revisions and before the first.
	Latest *latestDoc `json:"latest,omitempty"`
	// Grays summarizes the active grays (gray.go), sorted by id: every
	// change of a gray sets the head too, so watchers see it.
	Grays []configsvc.GraySummary `json:"grays,omitempty"`

	// legacy is Files decoded, for a head in layout 1.
	legacy map[string]configsvc.FileMeta
}

// layout2 reports whether the head keeps its manifest in manifest/.
func (h *headDoc) layout2() bool { return h.Since > 0 }

// manifestMarker is headDoc.Files in layout 2.
var manifestMarker = json.RawMessage(`"manifest"`)

// latestInline bounds the encoded size of a head node's Latest (JSON
// escapes can make content up to six times longer, so the bound is checked
// after encoding). It keeps the head small next to the 1 MiB jute.maxbuffer,
// and a publish's Multi (which then holds the content twice) well under it.
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
// latestDoc, or nil when the content is not UTF-8 (a JSON string would not
// carry its bytes unchanged; the store does not validate content, so it
// cannot assume it is text) or the document encodes in more than
// latestInline bytes.
func inlineLatest(rev configsvc.Revision, cs configsvc.Changeset) *latestDoc {
	size := 0
	for _, c := range cs.Changes {
		size += len(c.Content)
	}
	if size > latestInline {
		return nil // cannot encode shorter than it is
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
	if len(mustJSON(d)) > latestInline {
		return nil
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

// head returns the configsvc.Head of h with files, the manifest with
// metadata (h.legacy in layout 1, else read by the caller).
func (h *headDoc) head(ref configsvc.Ref, files map[string]configsvc.FileMeta) configsvc.Head {
	var links []string
	if len(h.Links) > 0 {
		links = append([]string(nil), h.Links...)
	}
	return configsvc.Head{Ref: ref, Revision: h.Revision, Files: files, Links: links, Updated: h.Updated, Author: h.Author,
		Grays: slices.Clone(h.Grays)}
}

// revDoc is the content of a revision node: the revision without content,
// the publish id that lets a retried publish recognise it, and its changes,
// each with the revision whose content node held the file before (Prev; 0
// for a new file), which is what history reads and pruning need. A
// revision written in layout 1 has no Prev but carries Files, the whole
// manifest at this revision (file → revision whose content node holds it).
type revDoc struct {
	Revision   int64            `json:"revision"`
	Author     string           `json:"author"`
	Time       time.Time        `json:"time"`
	Message    string           `json:"message"`
	RollbackOf int64            `json:"rollback_of,omitempty"`
	PublishID  string           `json:"publish_id"`
	Changes    []changeDoc      `json:"changes"`
	Files      map[string]int64 `json:"files,omitempty"`
}

type changeDoc struct {
	File   string `json:"file"`
	Delete bool   `json:"delete,omitempty"`
	// Prev is the revision of the file's content before this change; 0
	// when the file did not exist (layout 2).
	Prev int64 `json:"prev,omitempty"`
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

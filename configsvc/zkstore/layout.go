package zkstore

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

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
	return configsvc.Head{Ref: ref, Revision: h.Revision, Files: files, Links: links, Updated: h.Updated, Author: h.Author}
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

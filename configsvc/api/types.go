package api

import (
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
)

// The JSON bodies of the admin API, each named after its schema in the
// OpenAPI document (configsvc/httpapi/openapi.json; its test checks every
// type here against it). Lists are never null on the wire: the server sends
// [] for none. Where the server once answered with a JSON object built from
// a map, the struct's fields are in the map's (alphabetical) key order, so
// the bytes on the wire did not change when the types were introduced.

// FileMeta describes one file of a head manifest: the domain type, which
// has the wire shape.
type FileMeta = configsvc.FileMeta

// Instance is a registered instance of a service: the domain type, which
// has the wire shape. It is also the body of PUT …/instances/{id}.
type Instance = configsvc.Instance

// Grant is one role of a token ({"role","pattern"}): the domain type.
type Grant = access.Grant

// AuditEntry is one entry of the audit log: the domain type.
type AuditEntry = access.Entry

// ProxyState is what one proxy publishes about its live route table: the
// proxy's domain type, shown by GET /v1/routes.
type ProxyState = configsvc.ProxyState

// Status is the body of /healthz and /readyz: {"status":"ok"|"ready"}.
type Status struct {
	Status string `json:"status"`
}

// Head is a service or shared group at its newest revision: the answer of
// GET, and of PUT (create), /v1/services/{svc} and /v1/shared/{group}.
type Head struct {
	Name     string              `json:"name"`
	Kind     string              `json:"kind"` // "service" or "group"
	Revision int64               `json:"revision"`
	Files    map[string]FileMeta `json:"files"`
	Links    []string            `json:"links"` // services only: the linked groups, sorted
	// Updated is the time of the newest revision (or of the creation), RFC
	// 3339 in UTC; empty when the store kept none.
	Updated string `json:"updated"`
	Author  string `json:"author"`
	// Generation is the store's generation and PublishID the publish id of
	// revision Revision (configsvc.Identity); absent when the store kept
	// none.
	Generation string `json:"generation,omitempty"`
	PublishID  string `json:"publish_id,omitempty"`
	// Grays summarizes the active grays, sorted by id ([] when none):
	// enough to decide membership and which files each holds.
	Grays []GraySummary `json:"grays"`
}

// FromHead returns the wire form of h.
func FromHead(h configsvc.Head) Head {
	out := Head{Name: h.Ref.Name, Kind: h.Ref.Kind.String(), Revision: h.Revision, Files: map[string]FileMeta{},
		Links: append([]string{}, h.Links...), Author: h.Author, Generation: h.Generation, PublishID: h.PublishID,
		Grays: append([]GraySummary{}, h.Grays...)}
	if !h.Updated.IsZero() {
		out.Updated = h.Updated.UTC().Format(time.RFC3339Nano)
	}
	for name, m := range h.Files {
		m.Name = name
		out.Files[name] = m
	}
	return out
}

// Domain returns h as a configsvc.Head. An Updated that does not parse is
// left zero.
func (h Head) Domain() configsvc.Head {
	out := configsvc.Head{Ref: configsvc.Ref{Kind: kindOf(h.Kind), Name: h.Name}, Revision: h.Revision,
		Files: make(map[string]FileMeta, len(h.Files)), Author: h.Author, Generation: h.Generation, PublishID: h.PublishID}
	if len(h.Links) > 0 {
		out.Links = append([]string(nil), h.Links...)
	}
	if len(h.Grays) > 0 {
		out.Grays = append([]GraySummary(nil), h.Grays...)
	}
	if h.Updated != "" {
		out.Updated, _ = time.Parse(time.RFC3339Nano, h.Updated)
	}
	for name, m := range h.Files {
		out.Files[name] = m
	}
	return out
}

func kindOf(s string) configsvc.Kind {
	switch s {
	case configsvc.KindService.String():
		return configsvc.KindService
	case configsvc.KindGroup.String():
		return configsvc.KindGroup
	}
	return 0
}

// Change is one file's change in a revision or a publish: new content (a
// JSON string: every format Sluice stores is UTF-8), or a deletion.
// Content is absent where an answer leaves content out (revision lists,
// publish answers).
type Change struct {
	File    string  `json:"file"`
	Content *string `json:"content,omitempty"`
	Delete  bool    `json:"delete,omitempty"`
}

// PutChange returns the change that sets file to content.
func PutChange(file string, content []byte) Change {
	s := string(content)
	return Change{File: file, Content: &s}
}

// DeleteChange returns the change that deletes file.
func DeleteChange(file string) Change { return Change{File: file, Delete: true} }

// Revision is one revision: the answer of a publish or rollback (changes
// without content), an element of a revision list (likewise), GET
// …/revisions/{n} and the data of a "revision" event (with content).
type Revision struct {
	Revision   int64     `json:"revision"`
	Author     string    `json:"author"`
	Time       time.Time `json:"time"` // UTC
	Message    string    `json:"message"`
	Changes    []Change  `json:"changes"`
	RollbackOf int64     `json:"rollback_of,omitempty"`
	// PublishID, Parent and Generation identify the revision
	// (configsvc.Identity); absent when the store kept none.
	PublishID  string `json:"publish_id,omitempty"`
	Parent     string `json:"parent,omitempty"`
	Generation string `json:"generation,omitempty"`
}

// FromRevision returns the wire form of r, with the content of the changes
// when withContent is set.
func FromRevision(r configsvc.Revision, withContent bool) Revision {
	out := Revision{Revision: r.Number, Author: r.Author, Time: r.Time.UTC(), Message: r.Message,
		Changes: make([]Change, 0, len(r.Changes)), RollbackOf: r.RollbackOf,
		PublishID: r.PublishID, Parent: r.Parent, Generation: r.Generation}
	for _, ch := range r.Changes {
		c := Change{File: ch.File, Delete: ch.Delete}
		if withContent && !ch.Delete {
			c = PutChange(ch.File, ch.Content)
		}
		out.Changes = append(out.Changes, c)
	}
	return out
}

// FromRevisions returns the wire form of revs, without content.
func FromRevisions(revs []configsvc.Revision) []Revision {
	out := make([]Revision, len(revs))
	for i, r := range revs {
		out[i] = FromRevision(r, false)
	}
	return out
}

// Domain returns r as a configsvc.Revision; a change whose content is
// absent has nil Content.
func (r Revision) Domain() configsvc.Revision {
	out := configsvc.Revision{Number: r.Revision, Author: r.Author, Time: r.Time.UTC(), Message: r.Message,
		Changes: make([]configsvc.Change, len(r.Changes)), RollbackOf: r.RollbackOf,
		PublishID: r.PublishID, Parent: r.Parent, Generation: r.Generation}
	for i, c := range r.Changes {
		out.Changes[i] = configsvc.Change{File: c.File, Delete: c.Delete}
		if c.Content != nil && !c.Delete {
			out.Changes[i].Content = []byte(*c.Content)
		}
	}
	return out
}

// RevisionList is the answer of GET …/revisions: newest first.
type RevisionList struct {
	Revisions []Revision `json:"revisions"`
}

// PublishRequest is the body of POST …/revisions: several changes as one
// revision. BaseRevision, when set, refuses the publish (409) unless it is
// still the head; absent, the server publishes onto its head.
type PublishRequest struct {
	BaseRevision *int64   `json:"base_revision,omitempty"`
	Message      string   `json:"message,omitempty"`
	Changes      []Change `json:"changes"`
}

// RollbackRequest is the body of POST …/rollback: publish a revision whose
// content equals ToRevision, for every file or only Files. BaseRevision 0
// means the head.
type RollbackRequest struct {
	ToRevision   int64    `json:"to_revision"`
	Files        []string `json:"files,omitempty"`
	Message      string   `json:"message,omitempty"`
	BaseRevision int64    `json:"base_revision,omitempty"`
}

// The statuses of a FileDiff.
const (
	DiffAdded    = "added"
	DiffRemoved  = "removed"
	DiffModified = "modified"
)

// FileDiff is one file's entry in a Diff.
type FileDiff struct {
	File   string `json:"file"`
	Status string `json:"status"` // DiffAdded, DiffRemoved or DiffModified
	Diff   string `json:"diff"`   // unified diff, three lines of context
}

// Diff is the answer of GET …/diff: the files that differ between
// revisions From and To (revision 0 is the empty state).
type Diff struct {
	Files []FileDiff `json:"files"`
	From  int64      `json:"from"`
	To    int64      `json:"to"`
}

// Snapshot is the answer of GET …/snapshot: every file's content at one
// revision, and the service's linked groups now.
type Snapshot struct {
	Revision int64             `json:"revision"`
	Files    map[string]string `json:"files"`
	Links    []string          `json:"links"`
	// Generation and PublishID identify revision Revision
	// (configsvc.Identity); absent when the store kept none.
	Generation string `json:"generation,omitempty"`
	PublishID  string `json:"publish_id,omitempty"`
}

// Domain returns s as the configsvc.Snapshot of ref.
func (s Snapshot) Domain(ref configsvc.Ref) configsvc.Snapshot {
	out := configsvc.Snapshot{Ref: ref, Revision: s.Revision, Files: make(map[string][]byte, len(s.Files)),
		Generation: s.Generation, PublishID: s.PublishID}
	for name, content := range s.Files {
		out.Files[name] = []byte(content)
	}
	return out
}

// ServiceList is the answer of GET /v1/services: the names the caller may
// read, sorted.
type ServiceList struct {
	Services []string `json:"services"`
}

// GroupList is the answer of GET /v1/shared: the group names the caller
// may read, sorted.
type GroupList struct {
	Groups []string `json:"groups"`
}

// Users is the answer of GET /v1/shared/{group}/users: the services linked
// to the group, sorted.
type Users struct {
	Group    string   `json:"group"`
	Services []string `json:"services"`
}

// Links is the answer of PUT and DELETE /v1/services/{svc}/links/{group}:
// the service's linked groups after the change.
type Links struct {
	Links   []string `json:"links"`
	Service string   `json:"service"`
}

// LinksData is the data of a "links" event: the service's new link set.
type LinksData struct {
	Links []string `json:"links"`
}

// InstanceList is the answer of GET /v1/services/{svc}/instances.
type InstanceList struct {
	Instances []Instance `json:"instances"`
	Service   string     `json:"service"`
}

// InstancesData is the data of an "instances" event: the full live list.
type InstancesData struct {
	Instances []Instance `json:"instances"`
}

// Token is an API token as the API shows it. Secret, the token itself, is
// set only in the answer to POST /v1/tokens, the one time it is shown.
type Token struct {
	access.Token
	Secret string `json:"token,omitempty"`
}

// FromToken returns the wire form of t, without the secret.
func FromToken(t access.Token) Token {
	t.Roles = append([]Grant{}, t.Roles...)
	t.Created = t.Created.UTC()
	if !t.Expires.IsZero() {
		t.Expires = t.Expires.UTC()
	}
	return Token{Token: t}
}

// TokenList is the answer of GET /v1/tokens.
type TokenList struct {
	Tokens []Token `json:"tokens"`
}

// TokenRequest is the body of POST /v1/tokens. TTL is a Go duration
// ("24h"): the token expires that long after its creation; empty: never.
type TokenRequest struct {
	Name  string  `json:"name"`
	Roles []Grant `json:"roles"`
	TTL   string  `json:"ttl,omitempty"`
}

// Whoami is the answer of GET /v1/whoami: the caller's token.
type Whoami struct {
	Admin   bool    `json:"admin"`
	ID      string  `json:"id"`
	Name    string  `json:"name"`
	Roles   []Grant `json:"roles"`
	Session bool    `json:"session"` // authenticated by a console session cookie
}

// Session is the answer of POST /v1/session: the console session opened.
type Session struct {
	Admin   bool      `json:"admin"`
	Expires time.Time `json:"expires"`
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Roles   []Grant   `json:"roles"`
}

// SessionRequest is the body of POST /v1/session.
type SessionRequest struct {
	Token string `json:"token"`
}

// The states of a Pin.
const (
	PinActive  = "active"
	PinExpired = "expired"
	PinRevoked = "revoked"
)

// Pin is a debug pin as the API shows it: the stored pin, its state, and,
// only in the answer to POST /v1/pins, the pin token (Secret), the one
// time it is shown.
type Pin struct {
	configsvc.Pin
	State  string `json:"state"` // PinActive, PinExpired or PinRevoked
	Secret string `json:"token,omitempty"`
	// HiddenTargets counts the targets GET /v1/pins left out of Targets
	// because the caller may not see the instances of their services.
	HiddenTargets int `json:"hidden_targets,omitempty"`
}

// PinList is the answer of GET /v1/pins, newest first.
type PinList struct {
	Pins []Pin `json:"pins"`
}

// PinRecord is a stored pin with its record key, Hash: the SHA-256 of
// its token in hex, which a proxy looks a presented token up by. The
// token itself is never sent.
type PinRecord struct {
	Hash string `json:"hash"`
	configsvc.Pin
}

// PinsData is the data of a "pins" event of GET /v1/pins/watch: every
// stored pin (active, expired or revoked) with a target the caller may
// see, with only those targets, sorted by hash.
type PinsData struct {
	Pins []PinRecord `json:"pins"`
}

// PinRequest is the body of POST /v1/pins. TTL is a Go duration ("30m";
// empty: the server's default).
type PinRequest struct {
	Targets map[string]string `json:"targets"` // service → instance id
	TTL     string            `json:"ttl,omitempty"`
	Note    string            `json:"note,omitempty"`
}

// AuditList is the answer of GET /v1/audit, newest first. Next is the
// cursor of the next page (sent back as ?cursor with the same filters);
// "" when the page holds fewer entries than the limit (a full last page
// has one, which leads to an empty page).
type AuditList struct {
	Entries []AuditEntry `json:"entries"`
	Next    string       `json:"next"`
}

// LiveRoutes is the answer of GET /v1/routes: the live route tables the
// proxies publish.
type LiveRoutes struct {
	// Revision is the head revision of sluice-system (0 when it does not
	// exist): what every proxy should have in force.
	Revision int64 `json:"revision"`
	// Proxies are the proxies whose state is fresh, sorted by id.
	Proxies []ProxyState `json:"proxies"`
	// Stale are the proxies whose state is not, sorted by id.
	Stale []StaleProxy `json:"stale"`
}

// The reasons of a StaleProxy.
const (
	StaleOld        = "stale"      // its last state is too old
	StaleUnreported = "unreported" // registered in sluice-system, no state
)

// StaleProxy is a proxy GET /v1/routes lists apart: one whose state is
// older than the server's freshness bound, or one registered without any.
type StaleProxy struct {
	ID         string     `json:"id"`
	Addr       string     `json:"addr,omitempty"`
	Reason     string     `json:"reason"` // StaleOld or StaleUnreported
	Updated    *time.Time `json:"updated,omitempty"`
	Revision   int64      `json:"revision"`
	Registered bool       `json:"registered"` // a live instance of sluice-system
}

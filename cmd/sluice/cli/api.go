package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// The JSON shapes of the admin API the client reads and writes
// (docs/api.md). Unknown fields are ignored, so a newer server still works.

type fileMetaJSON struct {
	Name     string `json:"name"`
	Revision int64  `json:"revision"`
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	Format   string `json:"format"`
}

// headJSON is a service or group: GET /v1/services/{svc}.
type headJSON struct {
	Name     string                  `json:"name"`
	Revision int64                   `json:"revision"`
	Files    map[string]fileMetaJSON `json:"files"`
	Links    []string                `json:"links"`
	Updated  time.Time               `json:"updated"`
	Author   string                  `json:"author"`
}

type changeJSON struct {
	File    string  `json:"file"`
	Content *string `json:"content,omitempty"`
	Delete  bool    `json:"delete,omitempty"`
}

type revisionJSON struct {
	Revision   int64        `json:"revision"`
	Author     string       `json:"author"`
	Time       time.Time    `json:"time"`
	Message    string       `json:"message"`
	Changes    []changeJSON `json:"changes"`
	Files      []string     `json:"files"`
	RollbackOf int64        `json:"rollback_of"`
}

// fileNames returns the names of the files the revision changed, marking
// deletions with a leading "-".
func (r *revisionJSON) fileNames() []string {
	if len(r.Changes) == 0 {
		return r.Files
	}
	out := make([]string, len(r.Changes))
	for i, c := range r.Changes {
		out[i] = c.File
		if c.Delete {
			out[i] = "-" + c.File
		}
	}
	return out
}

type publishJSON struct {
	BaseRevision *int64       `json:"base_revision,omitempty"`
	Message      string       `json:"message,omitempty"`
	Changes      []changeJSON `json:"changes"`
}

type rollbackJSON struct {
	ToRevision int64    `json:"to_revision"`
	Files      []string `json:"files,omitempty"`
	Message    string   `json:"message,omitempty"`
}

type diffFileJSON struct {
	File    string `json:"file"`
	Status  string `json:"status"`
	Diff    string `json:"diff"`
	Unified string `json:"unified"`
}

type diffJSON struct {
	From  int64          `json:"from"`
	To    int64          `json:"to"`
	Files []diffFileJSON `json:"files"`
}

type instanceJSON struct {
	Service   string            `json:"service"`
	ID        string            `json:"id"`
	Addr      string            `json:"addr"`
	Labels    map[string]string `json:"labels"`
	Revision  int64             `json:"revision"`
	Status    string            `json:"status"`
	Rejected  int64             `json:"rejected_revision"`
	Error     string            `json:"error"`
	FromCache bool              `json:"from_cache"`
	Started   time.Time         `json:"started"`
	Updated   time.Time         `json:"updated"`
}

type roleJSON struct {
	Role    string `json:"role"`
	Pattern string `json:"pattern,omitempty"`
}

func (r roleJSON) String() string {
	if r.Pattern == "" || r.Role == "admin" {
		return r.Role
	}
	return r.Role + ":" + r.Pattern
}

type tokenJSON struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Roles     []roleJSON `json:"roles"`
	Created   time.Time  `json:"created"`
	CreatedBy string     `json:"created_by"`
	// Token is set only in the answer to a create, once.
	Token string `json:"token"`
}

type pinJSON struct {
	ID        string            `json:"id"`
	Targets   map[string]string `json:"targets"`
	Note      string            `json:"note"`
	CreatedBy string            `json:"created_by"`
	Created   time.Time         `json:"created"`
	Expires   time.Time         `json:"expires"`
	Revoked   bool              `json:"revoked"`
	State     string            `json:"state"` // active, expired or revoked
	// Token is set only in the answer to a create, once.
	Token string `json:"token"`
}

type auditJSON struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	ActorID   string    `json:"actor_id"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	Target    string    `json:"target"`
	Revision  int64     `json:"revision"`
	Outcome   string    `json:"outcome"`
	Reason    string    `json:"reason"`
	Status    int       `json:"status"`
	Client    string    `json:"client"`
	RequestID string    `json:"request_id"`
}

// nameItem is a list element that is either a bare name or an object with
// a "name" field.
type nameItem struct {
	headJSON
	bare bool // the list held only the name
}

func (n *nameItem) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		n.bare = true
		return json.Unmarshal(b, &n.Name)
	}
	return json.Unmarshal(b, &n.headJSON)
}

// decodeList decodes a list answer: either a JSON array, or an object whose
// field key (the first of keys present) holds the array.
func decodeList(body []byte, out any, keys ...string) error {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		return json.Unmarshal(body, out)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return fmt.Errorf("unexpected response: %w", err)
	}
	for _, k := range keys {
		if raw, ok := obj[k]; ok {
			if string(raw) == "null" {
				return nil
			}
			return json.Unmarshal(raw, out)
		}
	}
	return fmt.Errorf("unexpected response: no %q list in it", keys[0])
}

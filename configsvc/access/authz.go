package access

import (
	"fmt"
	"strings"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// Role is what a grant lets its holder do.
type Role string

// The roles. See docs/architecture.md, "Roles".
const (
	// RoleAdmin may do everything: manage tokens, read the audit log, delete
	// services and groups, and edit the reserved service sluice-system.
	RoleAdmin Role = "admin"
	// RoleEditor may read, publish, roll back, link, create, register
	// instances and create pins within its pattern.
	RoleEditor Role = "editor"
	// RoleViewer may read files, history, diffs, instances and watch.
	RoleViewer Role = "viewer"
	// RoleAgent may do what a service's SDK needs: read, watch and register
	// its instances.
	RoleAgent Role = "agent"
	// RoleProxy may do what a proxy needs and nothing else: read the
	// reserved service sluice-system (routes.yaml, its watch), create it
	// empty when it does not exist yet (so that a proxy watches it before
	// the first routes are published, as proxies on the store do), and
	// register there (where proxies find their peers and divide
	// cluster-scoped rate limits), publish its live state (ActionProxy),
	// and list and watch the instances of, and follow the pins on (ActionInstances, ActionProxy),
	// the services its pattern matches. It reads no other service's files,
	// publishes nothing and creates no pins.
	// Registering in sluice-system is for admins and proxies only.
	RoleProxy Role = "proxy"
	// RoleSecrets may read the plaintext of secret files (docs/secrets.md)
	// of the services and groups its pattern matches, and have their data
	// keys unwrapped (the SDK). It grants nothing else: reading a file at
	// all still takes a role that reads. Admin does NOT imply it: an admin
	// who needs it gives a token the grant, which the audit log records.
	RoleSecrets Role = "secrets"
)

// Grant gives a role on the services and shared groups whose name matches
// Pattern: a name ("orders") or a glob with '*' and '?' ("team-a-*",
// matched with configsvc.MatchGlob). A grant covers a service and a shared
// group of the same name alike. An admin grant's pattern is always "*".
type Grant struct {
	Role    Role   `json:"role"`
	Pattern string `json:"pattern"`
}

// String returns "role:pattern", or "admin".
func (g Grant) String() string {
	if g.Role == RoleAdmin {
		return string(RoleAdmin)
	}
	return string(g.Role) + ":" + g.Pattern
}

// ParseGrant parses "admin", "editor:team-a-*", "viewer:orders",
// "agent:orders", "proxy:*" or "secrets:orders" and validates it. Errors are *configsvc.FieldError
// (configsvc.ErrInvalid).
func ParseGrant(s string) (Grant, error) {
	role, pattern, _ := strings.Cut(s, ":")
	g := Grant{Role: Role(role), Pattern: pattern}
	if g.Role == RoleAdmin && pattern == "" {
		g.Pattern = "*"
	}
	return g, g.Validate()
}

// Validate checks the role and the pattern: 1-63 characters of a-z, 0-9,
// '-', '*' and '?'. It returns a *configsvc.FieldError.
func (g *Grant) Validate() error {
	switch g.Role {
	case RoleAdmin:
		if g.Pattern != "*" && g.Pattern != "" {
			return &configsvc.FieldError{Field: "roles.pattern", Value: g.Pattern, Msg: `an admin grant covers everything; its pattern must be "*"`}
		}
		g.Pattern = "*"
		return nil
	case RoleEditor, RoleViewer, RoleAgent, RoleProxy, RoleSecrets:
	default:
		return &configsvc.FieldError{Field: "roles.role", Value: string(g.Role), Msg: "must be admin, editor, viewer, agent, proxy or secrets"}
	}
	const rule = "must be 1-63 characters of a-z, 0-9, '-', '*' and '?'"
	if len(g.Pattern) == 0 || len(g.Pattern) > configsvc.MaxNameLen {
		return &configsvc.FieldError{Field: "roles.pattern", Value: g.Pattern, Msg: rule}
	}
	for i := 0; i < len(g.Pattern); i++ {
		c := g.Pattern[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '*' || c == '?') {
			return &configsvc.FieldError{Field: "roles.pattern", Value: g.Pattern, Msg: rule}
		}
	}
	return nil
}

// Principal is an authenticated caller: the token it presented (directly or
// through a console session) and that token's grants.
type Principal struct {
	TokenID string  // first 12 hex digits of the token hash; never the token
	Name    string  // the token's name, as given at creation
	Grants  []Grant // the token's roles
	Session bool    // authenticated through a console session cookie
	// Expires is when the token (or the console session) stops working;
	// zero for a token without expiry.
	Expires time.Time
}

// IsAdmin reports whether p holds an admin grant.
func (p *Principal) IsAdmin() bool {
	if p == nil {
		return false
	}
	for _, g := range p.Grants {
		if g.Role == RoleAdmin {
			return true
		}
	}
	return false
}

// Action is what a request wants to do to its target.
type Action string

// The actions the Authorizer decides.
const (
	// ActionRead: read files, head, history, diffs, snapshots, watches,
	// link lists; it implies ActionInstances.
	ActionRead Action = "read"
	// ActionInstances: list and watch a service's instances, and see the
	// pins that target it. Every role that may read a service may; a proxy
	// grant gives only this (and what it needs on sluice-system).
	ActionInstances Action = "instances"
	// ActionRegister: register, refresh or remove an instance of a service
	// (only the token that registered an instance, or an admin, may refresh
	// or remove it; the admin server checks that). In sluice-system only
	// admins and proxies may.
	ActionRegister Action = "register"
	// ActionPublish: publish, delete a file, roll back.
	ActionPublish Action = "publish"
	// ActionLink: link or unlink a shared group to a service (the target is
	// the service; the caller also needs ActionRead on the group).
	ActionLink Action = "link"
	// ActionCreate: create a service or group.
	ActionCreate Action = "create"
	// ActionDelete: delete a service or group. Admin only.
	ActionDelete Action = "delete"
	// ActionPin: create or revoke a debug pin for a service.
	ActionPin Action = "pin"
	// ActionManage: manage tokens and read the audit log. Admin only; the
	// target is ignored.
	ActionManage Action = "manage"
	// ActionProxy: what only a proxy does over the API: follow the pins
	// with their record keys (GET /v1/pins/watch) and publish its live
	// state (PUT /v1/routes/proxies/{id}). Admins and proxy grants (any
	// pattern) only; the target is ignored.
	ActionProxy Action = "proxy"
	// ActionSecrets: read the plaintext of the secret files of a service or
	// group, or have their data keys unwrapped. Only a secrets grant
	// allows it, admin included.
	ActionSecrets Action = "secrets"
)

// Target is what an action applies to: a service or a shared group. For a
// read of a group, Users may list the services linked to it: whoever may
// read one of them may read the group, because that service's SDK sees the
// group's files.
type Target struct {
	Ref   configsvc.Ref
	Users []string
}

// Decision is the Authorizer's answer. Reason explains it in words fit for
// the caller (it names the missing role, never a secret).
type Decision struct {
	Allowed bool
	Reason  string
}

// Authorizer decides whether a principal may perform an action on a target.
// The zero value is ready to use; it holds no state and is safe for
// concurrent use.
type Authorizer struct{}

// roleAllows reports whether role grants action within its pattern.
func roleAllows(r Role, a Action) bool {
	switch r {
	case RoleEditor:
		switch a {
		case ActionRead, ActionInstances, ActionRegister, ActionPublish, ActionLink, ActionCreate, ActionPin:
			return true
		}
	case RoleViewer:
		return a == ActionRead || a == ActionInstances
	case RoleAgent:
		return a == ActionRead || a == ActionInstances || a == ActionRegister
	case RoleProxy:
		return a == ActionInstances
	case RoleSecrets:
		return a == ActionSecrets
	}
	return false
}

// Decide returns whether p may do a to t. A nil principal is denied
// everything. Admins are allowed everything. ActionDelete and ActionManage
// are admin-only, and so is every change (publish, link, pin) to the
// reserved service sluice-system. Registering in sluice-system takes a
// proxy grant (any pattern), which also reads sluice-system and may create
// it (creating a service that exists changes nothing); other grants that
// match sluice-system read it as they read any service.
func (Authorizer) Decide(p *Principal, a Action, t Target) Decision {
	if p == nil {
		return Decision{Reason: "authentication required"}
	}
	if a == ActionSecrets {
		// Admin does not imply it (docs/secrets.md): a group's secrets
		// are read with a grant on the group, not on its users.
		for _, g := range p.Grants {
			if g.Role == RoleSecrets && configsvc.MatchGlob(g.Pattern, t.Ref.Name) {
				return Decision{Allowed: true, Reason: fmt.Sprintf("%s grants %s on %s", g, a, t.Ref)}
			}
		}
		return Decision{Reason: fmt.Sprintf("reading secret values of %s requires a secrets grant (admin does not imply it)", t.Ref)}
	}
	if p.IsAdmin() {
		return Decision{Allowed: true, Reason: "admin"}
	}
	switch a {
	case ActionDelete, ActionManage:
		return Decision{Reason: fmt.Sprintf("%s requires the admin role", a)}
	case ActionProxy:
		for _, g := range p.Grants {
			if g.Role == RoleProxy {
				return Decision{Allowed: true, Reason: fmt.Sprintf("%s grants %s", g, a)}
			}
		}
		return Decision{Reason: "only admins and proxies (role proxy) may follow pins with their keys or publish a proxy's state"}
	}
	if t.Ref.Kind == configsvc.KindService && t.Ref.Name == configsvc.SystemService {
		switch a {
		case ActionRead, ActionInstances, ActionRegister, ActionCreate:
			for _, g := range p.Grants {
				if g.Role == RoleProxy {
					return Decision{Allowed: true, Reason: fmt.Sprintf("%s grants %s on %s", g, a, t.Ref)}
				}
			}
			switch a {
			case ActionRegister:
				return Decision{Reason: fmt.Sprintf("only admins and proxies (role proxy) may register in %s", configsvc.SystemService)}
			case ActionCreate:
				return Decision{Reason: fmt.Sprintf("only admins and proxies (role proxy) may create %s", configsvc.SystemService)}
			}
		default:
			return Decision{Reason: fmt.Sprintf("only admins may %s %s", a, configsvc.SystemService)}
		}
	}
	for _, g := range p.Grants {
		if roleAllows(g.Role, a) && configsvc.MatchGlob(g.Pattern, t.Ref.Name) {
			return Decision{Allowed: true, Reason: fmt.Sprintf("%s grants %s on %s", g, a, t.Ref)}
		}
	}
	if a == ActionRead && t.Ref.Kind == configsvc.KindGroup {
		for _, svc := range t.Users {
			for _, g := range p.Grants {
				if roleAllows(g.Role, a) && configsvc.MatchGlob(g.Pattern, svc) {
					return Decision{Allowed: true, Reason: fmt.Sprintf("%s grants read on service/%s, which links %s", g, svc, t.Ref)}
				}
			}
		}
	}
	return Decision{Reason: fmt.Sprintf("no grant allows %s on %s", a, t.Ref)}
}

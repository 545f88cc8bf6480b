package cli

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
)

func (a *app) tokenCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens (admin only)",
	}
	var name string
	var roles []string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create --name NAME --role ROLE… [--ttl 24h]",
		Short: "Create a token; it is printed once and never again",
		Long: "Create an API token. Roles: admin, or editor:GLOB, viewer:GLOB,\n" +
			"agent:GLOB or proxy:GLOB granted on a service or shared group name or\n" +
			"glob (team-a-*). With --ttl the token stops working that long after\n" +
			"its creation. The token goes to stdout alone, so\n" +
			"TOKEN=$(sluice token create …) captures it; it cannot be shown again.",
		Example: "  sluice token create --name ci-orders --role editor:orders --ttl 24h\n" +
			"  sluice token create --name team-a --role editor:team-a-* --role viewer:*\n" +
			"  sluice token create --name edge-proxies --role proxy:*",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("ttl") && ttl <= 0 {
				return fmt.Errorf("--ttl %s: must be positive", ttl)
			}
			return a.runTokenCreate(cmd.Context(), name, roles, ttl)
		},
	}
	create.Flags().StringVar(&name, "name", "", "what the token is for (required)")
	create.Flags().StringArrayVar(&roles, "role", nil, "admin | editor:GLOB | viewer:GLOB | agent:GLOB | proxy:GLOB | secrets:GLOB (repeatable, at least one; secrets reveals secret files, docs/secrets.md)")
	create.Flags().DurationVar(&ttl, "ttl", 0, "the token expires this long after its creation (default: never)")
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List tokens (ids, names, roles; never the tokens)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runTokenList(cmd.Context())
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke <id>",
		Short: "Revoke a token by its id (see token list)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout(), "token %s revoked\n", args[0])
			return err
		},
	}
	c.AddCommand(create, list, revoke)
	return c
}

// parseRole parses "admin", "editor:orders", "viewer:team-a-*", "agent:*".
func parseRole(s string) (api.Grant, error) {
	role, pattern, hasPattern := strings.Cut(s, ":")
	switch r := access.Role(role); r {
	case access.RoleAdmin:
		if hasPattern {
			return api.Grant{}, fmt.Errorf("--role %q: admin is granted on everything and takes no pattern", s)
		}
		return api.Grant{Role: r}, nil
	case access.RoleEditor, access.RoleViewer, access.RoleAgent, access.RoleProxy:
		if pattern == "" {
			return api.Grant{}, fmt.Errorf("--role %q: %s needs a service or group name or glob, e.g. %s:orders or %s:team-a-*", s, role, role, role)
		}
		return api.Grant{Role: r, Pattern: pattern}, nil
	}
	return api.Grant{}, fmt.Errorf("--role %q: must be admin, editor:GLOB, viewer:GLOB, agent:GLOB or proxy:GLOB", s)
}

func (a *app) runTokenCreate(ctx context.Context, name string, roleSpecs []string, ttl time.Duration) error {
	if name == "" {
		return fmt.Errorf("--name is required: say what the token is for")
	}
	if len(roleSpecs) == 0 {
		return fmt.Errorf("--role is required: admin, editor:GLOB, viewer:GLOB, agent:GLOB or proxy:GLOB")
	}
	roles := make([]api.Grant, 0, len(roleSpecs))
	for _, s := range roleSpecs {
		r, err := parseRole(s)
		if err != nil {
			return err
		}
		roles = append(roles, r)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	req := api.TokenRequest{Name: name, Roles: roles}
	if ttl > 0 {
		req.TTL = ttl.String()
	}
	tok, err := c.CreateToken(ctx, req)
	if err != nil {
		return err
	}
	if a.json() {
		return marshalJSON(a.stdout(), tok)
	}
	if tok.Secret == "" {
		return fmt.Errorf("token create: the server's answer carries no token")
	}
	fmt.Fprintf(a.stderr(), "created token %s (%s) with roles %s; it is shown once, store it now:\n", tok.ID, name, rolesString(roles))
	_, err = fmt.Fprintln(a.stdout(), tok.Secret)
	return err
}

func rolesString(rs []api.Grant) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}

func (a *app) runTokenList(ctx context.Context) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	toks, err := c.Tokens(ctx)
	if err != nil {
		return err
	}
	if a.json() {
		return marshalJSON(a.stdout(), api.TokenList{Tokens: toks})
	}
	t := newTable(a.stdout(), "ID", "NAME", "ROLES", "CREATED", "CREATED BY", "EXPIRES")
	for _, tk := range toks {
		expires := "never"
		if !tk.Expires.IsZero() {
			expires = fmtTime(tk.Expires)
		}
		t.row(tk.ID, tk.Name, rolesString(tk.Roles), tk.Created, tk.CreatedBy, expires)
	}
	return t.flush()
}

func (a *app) whoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show the token in use: its id, name and roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			tk, err := c.Whoami(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return marshalJSON(a.stdout(), tk)
			}
			t := newTable(a.stdout(), "ID", "NAME", "ROLES", "SERVER")
			t.row(tk.ID, tk.Name, rolesString(tk.Roles), c.Server())
			return t.flush()
		},
	}
}

func (a *app) auditCmd() *cobra.Command {
	var service, actor, since string
	var limit int
	c := &cobra.Command{
		Use:   "audit [--service S] [--actor A] [--since 1h|RFC3339] [--limit N]",
		Short: "Query the audit log, newest first",
		Long: "Every mutating request, allowed or refused, is in the audit log with\n" +
			"who, what, the resulting revision, the client address and request id.\n" +
			"Refused requests are sampled: per client and actor, the first of each\n" +
			"minute, then one entry counting the rest (OUTCOME \"refused ×N, sampled\").\n" +
			"--since takes a duration back from now (90m, 24h) or an RFC 3339 time.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := access.Query{Service: service, Actor: actor, Limit: limit}
			if since != "" {
				ts, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				q.Since, _ = time.Parse(time.RFC3339, ts)
			}
			return a.runAudit(cmd.Context(), q)
		},
	}
	c.Flags().StringVar(&service, "service", "", "only entries about this service or group")
	c.Flags().StringVar(&actor, "actor", "", "only entries by this token id or name")
	c.Flags().StringVar(&since, "since", "", "only entries newer than a duration ago (24h) or an RFC 3339 time")
	c.Flags().IntVar(&limit, "limit", 50, "how many entries (the server caps it)")
	return c
}

// parseSince turns "90m" into now-90m, or checks an RFC 3339 time; it
// returns RFC 3339 in UTC.
func parseSince(s string, now time.Time) (string, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return "", fmt.Errorf("--since %q: a duration back from now must be positive", s)
		}
		return now.Add(-d).UTC().Format(time.RFC3339), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return "", fmt.Errorf("--since %q: give a duration (90m, 24h) or an RFC 3339 time (2026-01-02T15:04:05Z)", s)
	}
	return t.UTC().Format(time.RFC3339), nil
}

func (a *app) runAudit(ctx context.Context, q access.Query) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	entries, err := c.Audit(ctx, q)
	if err != nil {
		return err
	}
	if a.json() {
		return marshalJSON(a.stdout(), api.AuditList{Entries: entries})
	}
	t := newTable(a.stdout(), "TIME", "ACTOR", "ACTION", "TARGET", "REVISION", "STATUS", "CLIENT", "OUTCOME")
	for _, e := range entries {
		rev := ""
		if e.Revision > 0 {
			rev = strconv.FormatInt(e.Revision, 10)
		}
		status := ""
		if e.Status > 0 {
			status = strconv.Itoa(e.Status)
		}
		outcome := e.Outcome
		if e.Sampled {
			outcome += fmt.Sprintf(" ×%d, sampled", e.Count)
		}
		if e.Reason != "" {
			outcome += ": " + configsvc.Truncate(e.Reason, 59)
		}
		if e.Emergency != "" {
			outcome += ", EMERGENCY: " + configsvc.Truncate(e.Emergency, 59)
		}
		t.row(e.Time, firstNonEmpty(e.Actor, e.ActorID), e.Action, e.Target, rev, status, e.Client, outcome)
	}
	return t.flush()
}

func (a *app) pinCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "pin",
		Short: "Pin your own requests to chosen instances through the proxy",
		Long: "A pin is a time-limited token: requests through the proxy that carry it\n" +
			"(header X-Sluice-Pin, or cookie sluice_pin) go to the named instance of\n" +
			"each target service, while everyone else is load-balanced as usual.",
	}
	var targets []string
	var ttl time.Duration
	var note, proxy string
	create := &cobra.Command{
		Use:     "create --target SERVICE=INSTANCE… [--ttl 30m] [--note text]",
		Short:   "Create a pin; its token is printed once with a ready curl line",
		Example: "  sluice pin create --target orders=orders-7 --target payments=payments-2 --ttl 1h --note 'bug 123'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runPinCreate(cmd.Context(), targets, ttl, note, firstNonEmpty(proxy, a.env.Getenv("SLUICE_PROXY"), "http://127.0.0.1:7080"))
		},
	}
	create.Flags().StringArrayVar(&targets, "target", nil, "SERVICE=INSTANCE to pin (repeatable, at least one)")
	create.Flags().DurationVar(&ttl, "ttl", 30*time.Minute, "how long the pin lives (the server caps it)")
	create.Flags().StringVar(&note, "note", "", "why the pin exists, shown in pin list")
	create.Flags().StringVar(&proxy, "proxy", "", "proxy URL for the printed curl line (env SLUICE_PROXY; default http://127.0.0.1:7080)")
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List pins (never their tokens)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runPinList(cmd.Context())
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke <id>",
		Short: "Revoke a pin by its id; the proxy refuses it at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if _, err := c.RevokePin(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout(), "pin %s revoked\n", args[0])
			return err
		},
	}
	c.AddCommand(create, list, revoke)
	return c
}

func (a *app) runPinCreate(ctx context.Context, targetSpecs []string, ttl time.Duration, note, proxy string) error {
	if len(targetSpecs) == 0 {
		return fmt.Errorf("--target SERVICE=INSTANCE is required (see `sluice instances SERVICE` for instance ids)")
	}
	if ttl <= 0 {
		return fmt.Errorf("--ttl %s: must be positive", ttl)
	}
	targets := map[string]string{}
	for _, s := range targetSpecs {
		svc, inst, ok := strings.Cut(s, "=")
		if !ok || svc == "" || inst == "" {
			return fmt.Errorf("--target %q: must be SERVICE=INSTANCE, e.g. orders=orders-7", s)
		}
		if _, dup := targets[svc]; dup {
			return fmt.Errorf("--target %q: service %s is pinned twice", s, svc)
		}
		targets[svc] = inst
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	p, err := c.CreatePin(ctx, api.PinRequest{Targets: targets, TTL: ttl.String(), Note: note})
	if err != nil {
		return err
	}
	if a.json() {
		return marshalJSON(a.stdout(), p)
	}
	if p.Secret == "" {
		return fmt.Errorf("pin create: the server's answer carries no token")
	}
	w := a.stdout()
	fmt.Fprintf(w, "pin %s for %s, expires %s\n", p.ID, targetsString(targets), fmtTime(p.Expires))
	fmt.Fprintf(w, "token (shown once): %s\n", p.Secret)
	_, err = fmt.Fprintf(w, "try it:  curl -H 'X-Sluice-Pin: %s' %s/\n", p.Secret, strings.TrimRight(proxy, "/"))
	return err
}

func targetsString(t map[string]string) string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "→" + t[k]
	}
	return strings.Join(keys, ", ")
}

func (a *app) runPinList(ctx context.Context) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	pins, err := c.Pins(ctx)
	if err != nil {
		return err
	}
	if a.json() {
		return marshalJSON(a.stdout(), api.PinList{Pins: pins})
	}
	now := time.Now()
	t := newTable(a.stdout(), "ID", "TARGETS", "EXPIRES", "STATE", "CREATED BY", "NOTE")
	for _, p := range pins {
		state := p.State
		switch {
		case state != "":
		case p.Revoked:
			state = api.PinRevoked
		case !now.Before(p.Expires):
			state = api.PinExpired
		default:
			state = api.PinActive
		}
		t.row(p.ID, targetsString(p.Targets), p.Expires, state, p.CreatedBy, configsvc.Truncate(p.Note, 39))
	}
	return t.flush()
}

package cli

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc"
)

func (a *app) tokenCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens (admin only)",
	}
	var name string
	var roles []string
	create := &cobra.Command{
		Use:   "create --name NAME --role ROLE…",
		Short: "Create a token; it is printed once and never again",
		Long: "Create an API token. Roles: admin, or editor:GLOB, viewer:GLOB or\n" +
			"agent:GLOB granted on a service or shared group name or glob\n" +
			"(team-a-*). The token goes to stdout alone, so\n" +
			"TOKEN=$(sluice token create …) captures it; it cannot be shown again.",
		Example: "  sluice token create --name ci-orders --role editor:orders\n" +
			"  sluice token create --name team-a --role editor:team-a-* --role viewer:*",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runTokenCreate(cmd.Context(), name, roles)
		},
	}
	create.Flags().StringVar(&name, "name", "", "what the token is for (required)")
	create.Flags().StringArrayVar(&roles, "role", nil, "admin | editor:GLOB | viewer:GLOB | agent:GLOB (repeatable, at least one)")
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
			if _, err := c.do(cmd.Context(), request{method: http.MethodDelete, path: "/v1/tokens/" + url.PathEscape(args[0])}); err != nil {
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
func parseRole(s string) (roleJSON, error) {
	role, pattern, hasPattern := strings.Cut(s, ":")
	switch role {
	case "admin":
		if hasPattern {
			return roleJSON{}, fmt.Errorf("--role %q: admin is granted on everything and takes no pattern", s)
		}
		return roleJSON{Role: role}, nil
	case "editor", "viewer", "agent":
		if pattern == "" {
			return roleJSON{}, fmt.Errorf("--role %q: %s needs a service or group name or glob, e.g. %s:orders or %s:team-a-*", s, role, role, role)
		}
		return roleJSON{Role: role, Pattern: pattern}, nil
	}
	return roleJSON{}, fmt.Errorf("--role %q: must be admin, editor:GLOB, viewer:GLOB or agent:GLOB", s)
}

func (a *app) runTokenCreate(ctx context.Context, name string, roleSpecs []string) error {
	if name == "" {
		return fmt.Errorf("--name is required: say what the token is for")
	}
	if len(roleSpecs) == 0 {
		return fmt.Errorf("--role is required: admin, editor:GLOB, viewer:GLOB or agent:GLOB")
	}
	roles := make([]roleJSON, 0, len(roleSpecs))
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
	var tok tokenJSON
	resp, err := c.doJSON(ctx, http.MethodPost, "/v1/tokens", nil, map[string]any{"name": name, "roles": roles}, &tok)
	if err != nil {
		return err
	}
	if a.json() {
		return printJSON(a.stdout(), resp.body)
	}
	if tok.Token == "" {
		return fmt.Errorf("token create: the server's answer carries no token")
	}
	fmt.Fprintf(a.stderr(), "created token %s (%s) with roles %s; it is shown once, store it now:\n", tok.ID, name, rolesString(roles))
	_, err = fmt.Fprintln(a.stdout(), tok.Token)
	return err
}

func rolesString(rs []roleJSON) string {
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
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/tokens"})
	if err != nil {
		return err
	}
	if a.json() {
		return printJSON(a.stdout(), resp.body)
	}
	var toks []tokenJSON
	if err := decodeList(resp.body, &toks, "tokens", "items"); err != nil {
		return err
	}
	t := newTable(a.stdout(), "ID", "NAME", "ROLES", "CREATED", "CREATED BY")
	for _, tk := range toks {
		t.row(tk.ID, tk.Name, rolesString(tk.Roles), tk.Created, tk.CreatedBy)
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
			var tk tokenJSON
			resp, err := c.doJSON(cmd.Context(), http.MethodGet, "/v1/whoami", nil, nil, &tk)
			if err != nil {
				return err
			}
			if a.json() {
				return printJSON(a.stdout(), resp.body)
			}
			t := newTable(a.stdout(), "ID", "NAME", "ROLES", "SERVER")
			t.row(tk.ID, tk.Name, rolesString(tk.Roles), c.base)
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
			"--since takes a duration back from now (90m, 24h) or an RFC 3339 time.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if service != "" {
				q.Set("service", service)
			}
			if actor != "" {
				q.Set("actor", actor)
			}
			if since != "" {
				ts, err := parseSince(since, time.Now())
				if err != nil {
					return err
				}
				q.Set("since", ts)
			}
			if limit > 0 {
				q.Set("limit", strconv.Itoa(limit))
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

func (a *app) runAudit(ctx context.Context, q url.Values) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/audit", query: q})
	if err != nil {
		return err
	}
	if a.json() {
		return printJSON(a.stdout(), resp.body)
	}
	var entries []auditJSON
	if err := decodeList(resp.body, &entries, "entries", "audit", "items"); err != nil {
		return err
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
		if e.Reason != "" {
			outcome += ": " + configsvc.Truncate(e.Reason, 59)
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
			if _, err := c.do(cmd.Context(), request{method: http.MethodDelete, path: "/v1/pins/" + url.PathEscape(args[0])}); err != nil {
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
	body := map[string]any{"targets": targets, "ttl": ttl.String()}
	if note != "" {
		body["note"] = note
	}
	var p pinJSON
	resp, err := c.doJSON(ctx, http.MethodPost, "/v1/pins", nil, body, &p)
	if err != nil {
		return err
	}
	if a.json() {
		return printJSON(a.stdout(), resp.body)
	}
	if p.Token == "" {
		return fmt.Errorf("pin create: the server's answer carries no token")
	}
	w := a.stdout()
	fmt.Fprintf(w, "pin %s for %s, expires %s\n", p.ID, targetsString(targets), fmtTime(p.Expires))
	fmt.Fprintf(w, "token (shown once): %s\n", p.Token)
	_, err = fmt.Fprintf(w, "try it:  curl -H 'X-Sluice-Pin: %s' %s/\n", p.Token, strings.TrimRight(proxy, "/"))
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
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/pins"})
	if err != nil {
		return err
	}
	if a.json() {
		return printJSON(a.stdout(), resp.body)
	}
	var pins []pinJSON
	if err := decodeList(resp.body, &pins, "pins", "items"); err != nil {
		return err
	}
	now := time.Now()
	t := newTable(a.stdout(), "ID", "TARGETS", "EXPIRES", "STATE", "CREATED BY", "NOTE")
	for _, p := range pins {
		state := p.State
		switch {
		case state != "":
		case p.Revoked:
			state = "revoked"
		case !now.Before(p.Expires):
			state = "expired"
		default:
			state = "active"
		}
		t.row(p.ID, targetsString(p.Targets), p.Expires, state, p.CreatedBy, configsvc.Truncate(p.Note, 39))
	}
	return t.flush()
}

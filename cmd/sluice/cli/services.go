package cli

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc"
)

func (a *app) servicesCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "services",
		Short: "List, create, show and delete services",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runList(cmd.Context(), serviceScope)
		},
	}
	c.AddCommand(a.listCmd(serviceScope), a.createCmd(serviceScope), a.showCmd(serviceScope), a.deleteCmd(serviceScope))
	return c
}

func (a *app) sharedCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "shared",
		Short: "Shared groups: config files owned by no single service",
		Long: "Shared groups hold config files that several services use. A service\n" +
			"links to a group (sluice link) and its SDK sees the group's files as\n" +
			"<group>/<file>. `sluice shared users <group>` lists who is affected before\n" +
			"you change one.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runList(cmd.Context(), groupScope)
		},
	}
	c.AddCommand(
		a.listCmd(groupScope), a.createCmd(groupScope), a.showCmd(groupScope), a.deleteCmd(groupScope),
		a.getCmd(groupScope), a.putCmd(groupScope), a.editCmd(groupScope), a.publishCmd(groupScope),
		a.historyCmd(groupScope), a.diffCmd(groupScope), a.rollbackCmd(groupScope), a.watchCmd(groupScope), a.usersCmd(),
	)
	return c
}

func (a *app) listCmd(s scope) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List " + string(s),
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runList(cmd.Context(), s)
		},
	}
}

func (a *app) runList(ctx context.Context, s scope) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/" + string(s)})
	if err != nil {
		return err
	}
	if a.json() {
		return printJSON(a.stdout(), resp.body)
	}
	var items []nameItem
	if err := decodeList(resp.body, &items, string(s), "services", "groups", "shared", "items"); err != nil {
		return err
	}
	if len(items) == 0 {
		_, err := fmt.Fprintf(a.stdout(), "no %s yet (create one with `sluice %s create NAME`)\n", s.plural(), s.verb())
		return err
	}
	if items[0].bare {
		t := newTable(a.stdout(), "NAME")
		for _, it := range items {
			t.row(it.Name)
		}
		return t.flush()
	}
	t := newTable(a.stdout(), "NAME", "REVISION", "FILES", "UPDATED")
	for _, it := range items {
		files := ""
		if it.Files != nil {
			files = fmt.Sprint(len(it.Files))
		}
		t.row(it.Name, it.Revision, files, it.Updated)
	}
	return t.flush()
}

func (a *app) createCmd(s scope) *cobra.Command {
	return &cobra.Command{
		Use:   "create <name>",
		Short: "Create an empty " + s.noun() + " (revision 0)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			resp, err := c.do(cmd.Context(), request{method: http.MethodPut, path: s.path(args[0])})
			if err != nil {
				return err
			}
			if a.json() {
				return printJSON(a.stdout(), resp.body)
			}
			what := "created"
			if resp.status == http.StatusOK {
				what = "already exists" // PUT is idempotent: 200 instead of 201
			}
			_, err = fmt.Fprintf(a.stdout(), "%s %s %s\n", s.noun(), args[0], what)
			return err
		},
	}
}

func (a *app) showCmd(s scope) *cobra.Command {
	return &cobra.Command{
		Use:   "show <name>",
		Short: "Show a " + s.noun() + "'s newest revision and its files",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var h headJSON
			resp, err := c.doJSON(cmd.Context(), http.MethodGet, s.path(args[0]), nil, nil, &h)
			if err != nil {
				return err
			}
			if a.json() {
				return printJSON(a.stdout(), resp.body)
			}
			w := a.stdout()
			fmt.Fprintf(w, "%s %s at revision %d", s.noun(), args[0], h.Revision)
			if !h.Updated.IsZero() {
				fmt.Fprintf(w, ", updated %s", fmtTime(h.Updated))
			}
			if h.Author != "" {
				fmt.Fprintf(w, " by %s", h.Author)
			}
			fmt.Fprintln(w)
			if len(h.Links) > 0 {
				fmt.Fprintf(w, "linked groups: %s\n", strings.Join(h.Links, ", "))
			}
			names := make([]string, 0, len(h.Files))
			for n := range h.Files {
				names = append(names, n)
			}
			sort.Strings(names)
			t := newTable(w, "FILE", "FORMAT", "SIZE", "REVISION", "SHA256")
			for _, n := range names {
				f := h.Files[n]
				t.row(n, f.Format, f.Size, f.Revision, configsvc.Truncate(f.SHA256, 12))
			}
			return t.flush()
		},
	}
}

func (a *app) deleteCmd(s scope) *cobra.Command {
	var yes bool
	c := &cobra.Command{
		Use:   "delete <name> --yes",
		Short: "Delete a " + s.noun() + " with its whole history (admin only)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return fmt.Errorf("deleting %s %s removes its whole history: add --yes to confirm", s.noun(), args[0])
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if _, err := c.do(cmd.Context(), request{method: http.MethodDelete, path: s.path(args[0])}); err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout(), "%s %s deleted\n", s.noun(), args[0])
			return err
		},
	}
	c.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")
	return c
}

func (a *app) usersCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "users <group>",
		Short: "List the services linked to a shared group",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			resp, err := c.do(cmd.Context(), request{method: http.MethodGet, path: groupScope.path(args[0], "users")})
			if err != nil {
				return err
			}
			if a.json() {
				return printJSON(a.stdout(), resp.body)
			}
			var users []nameItem
			if err := decodeList(resp.body, &users, "users", "services", "items"); err != nil {
				return err
			}
			if len(users) == 0 {
				_, err := fmt.Fprintf(a.stdout(), "no service uses group %s\n", args[0])
				return err
			}
			t := newTable(a.stdout(), "SERVICE")
			for _, u := range users {
				t.row(u.Name)
			}
			return t.flush()
		},
	}
}

func (a *app) linkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "link <service> <group>",
		Short: "Make a service use a shared group",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runLink(cmd.Context(), http.MethodPut, args[0], args[1])
		},
	}
}

func (a *app) unlinkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "unlink <service> <group>",
		Short: "Stop a service using a shared group",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runLink(cmd.Context(), http.MethodDelete, args[0], args[1])
		},
	}
}

func (a *app) runLink(ctx context.Context, method, svc, group string) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, request{method: method, path: serviceScope.path(svc, "links", group)})
	if err != nil {
		return err
	}
	if a.json() && len(resp.body) > 0 {
		return printJSON(a.stdout(), resp.body)
	}
	verb := "now uses"
	if method == http.MethodDelete {
		verb = "no longer uses"
	}
	_, err = fmt.Fprintf(a.stdout(), "service %s %s shared group %s\n", svc, verb, group)
	return err
}

func (a *app) instancesCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "instances <service>",
		Short: "List a service's running instances and the revision each applied",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			resp, err := c.do(cmd.Context(), request{method: http.MethodGet, path: serviceScope.path(args[0], "instances")})
			if err != nil {
				return err
			}
			if a.json() {
				return printJSON(a.stdout(), resp.body)
			}
			var ins []instanceJSON
			if err := decodeList(resp.body, &ins, "instances", "items"); err != nil {
				return err
			}
			if len(ins) == 0 {
				_, err := fmt.Fprintf(a.stdout(), "no live instances of %s\n", args[0])
				return err
			}
			t := newTable(a.stdout(), "ID", "ADDR", "REVISION", "STATUS", "UPDATED", "NOTE")
			for _, in := range ins {
				note := ""
				switch {
				case in.Status == "rejected":
					note = fmt.Sprintf("rejected %d: %s", in.Rejected, configsvc.Truncate(in.Error, 59))
				case in.FromCache:
					note = "started from cache"
				}
				t.row(in.ID, in.Addr, in.Revision, in.Status, in.Updated, note)
			}
			return t.flush()
		},
	}
}

package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
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
			"links to a group (`sluice link`) and its SDK sees the group's files as\n" +
			"`<group>/<file>`. `sluice shared users <group>` lists who is affected before\n" +
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
	names, err := c.List(ctx, s.kind())
	if err != nil {
		return err
	}
	if a.json() {
		if s == groupScope {
			return marshalJSON(a.stdout(), api.GroupList{Groups: names})
		}
		return marshalJSON(a.stdout(), api.ServiceList{Services: names})
	}
	if len(names) == 0 {
		_, err := fmt.Fprintf(a.stdout(), "no %s yet (create one with `sluice %s create NAME`)\n", s.plural(), s.verb())
		return err
	}
	t := newTable(a.stdout(), "NAME")
	for _, n := range names {
		t.row(n)
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
			h, created, err := c.Create(cmd.Context(), s.ref(args[0]))
			if err != nil {
				return err
			}
			if a.json() {
				return marshalJSON(a.stdout(), api.FromHead(h))
			}
			what := "created"
			if !created {
				what = "already exists" // creating is idempotent
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
			h, err := c.Head(cmd.Context(), s.ref(args[0]))
			if err != nil {
				return err
			}
			if a.json() {
				return marshalJSON(a.stdout(), api.FromHead(h))
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
			if err := c.Delete(cmd.Context(), s.ref(args[0])); err != nil {
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
			users, err := c.Users(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return marshalJSON(a.stdout(), api.Users{Group: args[0], Services: users})
			}
			if len(users) == 0 {
				_, err := fmt.Fprintf(a.stdout(), "no service uses group %s\n", args[0])
				return err
			}
			t := newTable(a.stdout(), "SERVICE")
			for _, u := range users {
				t.row(u)
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
			return a.runLink(cmd.Context(), true, args[0], args[1])
		},
	}
}

func (a *app) unlinkCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "unlink <service> <group>",
		Short: "Stop a service using a shared group",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runLink(cmd.Context(), false, args[0], args[1])
		},
	}
}

func (a *app) runLink(ctx context.Context, add bool, svc, group string) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	link, verb := c.Link, "now uses"
	if !add {
		link, verb = c.Unlink, "no longer uses"
	}
	links, err := link(ctx, svc, group)
	if err != nil {
		return err
	}
	if a.json() {
		return marshalJSON(a.stdout(), api.Links{Links: links, Service: svc})
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
			ins, err := c.Instances(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if a.json() {
				return marshalJSON(a.stdout(), api.InstanceList{Instances: ins, Service: args[0]})
			}
			if len(ins) == 0 {
				_, err := fmt.Fprintf(a.stdout(), "no live instances of %s\n", args[0])
				return err
			}
			t := newTable(a.stdout(), "ID", "ADDR", "REVISION", "STATUS", "UPDATED", "NOTE")
			for _, in := range ins {
				note := ""
				switch {
				case in.Status == configsvc.StatusRejected:
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

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// changeCmd is `sluice change list|show|approve|decline|apply|rebase`: the
// change requests approval policies create (docs/governance.md).
func (a *app) changeCmd() *cobra.Command {
	var group bool
	c := &cobra.Command{
		Use:   "change",
		Short: "Review, approve and apply change requests (four-eyes approval)",
		Long: "Where an approval policy applies (see `sluice policy`), a publish, file put,\n" +
			"delete or rollback creates a change request instead of a revision. Reviewers\n" +
			"approve or decline it with a comment; once it has its approvals, its author or\n" +
			"a reviewer applies it. When the head moved meanwhile, applying is refused until\n" +
			"the author rebases it. An admin may apply one without approvals with\n" +
			"--emergency REASON, audited and listed by `sluice change emergencies`.\n" +
			"--group addresses a shared group instead of a service.",
	}
	c.PersistentFlags().BoolVar(&group, "group", false, "the name is a shared group, not a service")
	scopeOf := func() scope {
		if group {
			return groupScope
		}
		return serviceScope
	}
	var all bool
	list := &cobra.Command{
		Use:   "list [service]",
		Short: "List open change requests (of one service, or every one you may read)",
		Args:  cobra.RangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			var crs []api.ChangeRequest
			if len(args) == 0 {
				crs, err = cl.AllChanges(cmd.Context(), all)
			} else {
				crs, err = cl.Changes(cmd.Context(), scopeOf().ref(args[0]), all)
			}
			if err != nil {
				return err
			}
			if a.json() {
				return marshalJSON(a.stdout(), api.ChangeList{Changes: crs})
			}
			t := newTable(a.stdout(), "ID", "TARGET", "STATE", "APPROVALS", "AUTHOR", "BASE", "FILES", "MESSAGE")
			for _, cr := range crs {
				t.row(cr.ID, cr.Kind+"/"+cr.Name, cr.State, fmt.Sprintf("%d/%d", cr.Approvals, cr.Policy.Approvals), cr.Author, cr.BaseRevision,
					configsvc.Truncate(strings.Join(changeFiles(cr), ","), 39), configsvc.Truncate(firstLine(cr.Message), 50))
			}
			return t.flush()
		},
	}
	list.Flags().BoolVar(&all, "all", false, "applied and expired ones too")
	show := &cobra.Command{
		Use:   "show <service> <id>",
		Short: "Show a change request: thread, diff against the head, validation and who it would hit",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			cr, err := cl.Change(cmd.Context(), scopeOf().ref(args[0]), args[1])
			if err != nil {
				return err
			}
			if a.json() {
				return marshalJSON(a.stdout(), cr)
			}
			a.printChange(cr)
			return nil
		},
	}
	review := func(verb, short string, approve bool) *cobra.Command {
		var comment string
		rc := &cobra.Command{
			Use:   verb + " <service> <id> [-m comment]",
			Short: short,
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				cl, err := a.client()
				if err != nil {
					return err
				}
				f := cl.Decline
				if approve {
					f = cl.Approve
				}
				cr, err := f(cmd.Context(), scopeOf().ref(args[0]), args[1], comment)
				if err != nil {
					return err
				}
				if a.json() {
					return marshalJSON(a.stdout(), cr)
				}
				_, err = fmt.Fprintf(a.stdout(), "%s: %sd change request %s (%d of %d approvals, %d decline(s))\n", args[0], verb, cr.ID, cr.Approvals, cr.Policy.Approvals, cr.Declines)
				return err
			},
		}
		rc.Flags().StringVarP(&comment, "message", "m", "", "comment")
		return rc
	}
	var emergency string
	apply := &cobra.Command{
		Use:   "apply <service> <id>",
		Short: "Publish an approved change request",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			var opts []api.WriteOption
			if emergency != "" {
				opts = append(opts, api.WithEmergency(emergency))
			}
			rev, err := cl.Apply(cmd.Context(), scopeOf().ref(args[0]), args[1], opts...)
			if err = a.explain(err); isStatus(err, 409) && strings.Contains(err.Error(), "rebase") {
				return fmt.Errorf("%w\nthe author rebases it with `sluice change rebase %s %s`", err, args[0], args[1])
			}
			if err != nil {
				return err
			}
			return a.printPublished(rev, args[0], nil)
		},
	}
	apply.Flags().StringVar(&emergency, "emergency", "", "admins: apply without the approvals, giving the reason (audited)")
	var msg string
	rebase := &cobra.Command{
		Use:   "rebase <service> <id> [-m message]",
		Short: "Re-submit your change request on the current head (approvals start over)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			cr, err := cl.Rebase(cmd.Context(), scopeOf().ref(args[0]), args[1], api.RebaseRequest{Message: msg})
			if err != nil {
				return err
			}
			if a.json() {
				return marshalJSON(a.stdout(), cr)
			}
			_, err = fmt.Fprintf(a.stdout(), "%s: change request %s now applies to revision %d; it needs %d approval(s) again\n", args[0], cr.ID, cr.BaseRevision, cr.Policy.Approvals)
			return err
		},
	}
	rebase.Flags().StringVarP(&msg, "message", "m", "", "new message (default: keep it)")
	var allEm bool
	emergencies := &cobra.Command{
		Use:   "emergencies",
		Short: "List emergency changes waiting for after-the-fact review",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			es, err := cl.Emergencies(cmd.Context(), allEm)
			if err != nil {
				return err
			}
			if a.json() {
				return marshalJSON(a.stdout(), api.EmergencyList{Emergencies: es})
			}
			t := newTable(a.stdout(), "ID", "TIME", "TARGET", "REVISION", "ACTOR", "REASON", "REVIEWED BY")
			for _, e := range es {
				t.row(e.ID, e.Time, e.Kind+"/"+e.Name, e.Revision, e.Actor, configsvc.Truncate(e.Reason, 50), e.ReviewedBy)
			}
			return t.flush()
		},
	}
	emergencies.Flags().BoolVar(&allEm, "all", false, "reviewed ones too")
	var reviewComment string
	reviewed := &cobra.Command{
		Use:   "reviewed <emergency-id> [-m comment]",
		Short: "Mark an emergency change reviewed (someone other than who made it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			e, err := cl.ReviewEmergency(cmd.Context(), args[0], reviewComment)
			if err != nil {
				return err
			}
			if a.json() {
				return marshalJSON(a.stdout(), e)
			}
			_, err = fmt.Fprintf(a.stdout(), "emergency %s (%s/%s revision %d) marked reviewed\n", e.ID, e.Kind, e.Name, e.Revision)
			return err
		},
	}
	reviewed.Flags().StringVarP(&reviewComment, "message", "m", "", "comment")
	c.AddCommand(list, show, review("approve", "Approve a change request", true), review("decline", "Decline a change request", false),
		apply, rebase, emergencies, reviewed)
	return c
}

func changeFiles(cr api.ChangeRequest) []string {
	out := make([]string, len(cr.Files))
	for i, f := range cr.Files {
		out[i] = f.File
		if f.Delete {
			out[i] = "-" + f.File
		}
	}
	return out
}

// firstLine returns the first line of s (a message shown in a table).
func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// printChange writes a change request, its thread and its dry run.
func (a *app) printChange(cr api.ChangeRequest) {
	w := a.stdout()
	fmt.Fprintf(w, "change request %s: %s/%s, %s, %s\n", cr.ID, cr.Kind, cr.Name, cr.Operation, cr.State)
	fmt.Fprintf(w, "author %s, base revision %d, expires %s\n", cr.Author, cr.BaseRevision, fmtTime(cr.Expires))
	fmt.Fprintf(w, "policy %s: %d of %d approval(s), %d decline(s)\n", strings.Join(cr.Policy.Policies, ", "), cr.Approvals, cr.Policy.Approvals, cr.Declines)
	if cr.Message != "" {
		fmt.Fprintf(w, "message: %s\n", cr.Message)
	}
	fmt.Fprintln(w, "\nthread:")
	for _, e := range cr.Thread {
		fmt.Fprintf(w, "  %s  %-9s %s", fmtTime(e.Time), e.Kind, e.Actor)
		if e.Comment != "" {
			fmt.Fprintf(w, ": %s", strings.ReplaceAll(e.Comment, "\n", " "))
		}
		fmt.Fprintln(w)
	}
	if cr.DryRun != nil {
		fmt.Fprintln(w)
		printDryRun(w, *cr.DryRun)
	} else if cr.State == "open" {
		fmt.Fprintln(w, "\nthe head moved past its base: the author rebases it before it can apply")
	}
}

// printDryRun writes what a publish would do.
func printDryRun(w io.Writer, d api.DryRun) {
	fmt.Fprintf(w, "dry run: %s %s/%s on revision %d (nothing was written)\n", d.Operation, d.Kind, d.Name, d.BaseRevision)
	if d.Valid {
		fmt.Fprintln(w, "validation: ok")
	} else {
		fmt.Fprintf(w, "validation: %d violation(s)\n", len(d.Violations)+d.ViolationsOmitted)
		for _, v := range d.Violations {
			fmt.Fprintf(w, "  %s\n", v.String())
		}
	}
	for _, f := range d.Files {
		fmt.Fprintf(w, "%s %s\n", f.Status, f.File)
		fmt.Fprint(w, f.Diff)
		if f.Diff != "" && !strings.HasSuffix(f.Diff, "\n") {
			fmt.Fprintln(w)
		}
	}
	fmt.Fprintf(w, "would reach %d service(s), %d live instance(s):\n", len(d.Targets), d.Instances)
	for _, t := range d.Targets {
		fmt.Fprintf(w, "  %s (revision %d)", t.Service, t.Revision)
		for _, in := range t.Instances {
			fmt.Fprintf(w, " %s@%d", in.ID, in.Revision)
		}
		fmt.Fprintln(w)
	}
	for _, r := range d.Routes {
		fmt.Fprintf(w, "route %s: %s\n", r.Route, r.Change)
	}
	if d.ChangeRequest && d.Policy != nil {
		fmt.Fprintf(w, "an approval policy applies (%s): publishing creates a change request needing %d approval(s)\n", strings.Join(d.Policy.Policies, ", "), d.Policy.Approvals)
	}
}

// pending reports whether err is a *api.Pending (an approval policy made
// the write a change request), which it prints instead of failing.
func (a *app) pending(err error) (bool, error) {
	var p *api.Pending
	if !errors.As(err, &p) {
		return false, err
	}
	if a.json() {
		return true, marshalJSON(a.stdout(), p.Change)
	}
	_, werr := fmt.Fprintf(a.stdout(), "%s/%s: change request %s created; it needs %d approval(s) under policy %s (sluice change show %s %s)\n",
		p.Change.Kind, p.Change.Name, p.Change.ID, p.Change.Policy.Approvals, strings.Join(p.Change.Policy.Policies, ", "), p.Change.Name, p.Change.ID)
	return true, werr
}

// policyCmd is `sluice policy list|get|put|delete` (admins).
func (a *app) policyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "policy",
		Short: "Manage approval policies (admins): which changes need approvals",
		Long: "An approval policy makes changes to the services and shared groups its\n" +
			"pattern matches wait for approvals as change requests (see `sluice change`).",
	}
	list := &cobra.Command{
		Use: "list", Short: "List approval policies", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			ps, err := cl.Policies(cmd.Context())
			if err != nil {
				return err
			}
			if a.json() {
				return marshalJSON(a.stdout(), api.PolicyList{Policies: ps})
			}
			t := newTable(a.stdout(), "NAME", "PATTERN", "APPROVALS", "APPROVER", "AUTHOR MAY APPROVE", "DECLINE BLOCKS", "EXPIRY")
			for _, p := range ps {
				t.row(p.Name, p.Pattern, p.Approvals, p.ApproverRole, p.AuthorMayApprove, p.DeclineBlocks, p.Expiry)
			}
			return t.flush()
		},
	}
	get := &cobra.Command{
		Use: "get <name>", Short: "Print an approval policy as JSON", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			p, err := cl.Policy(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return marshalJSON(a.stdout(), p)
		},
	}
	var p api.Policy
	put := &cobra.Command{
		Use:     "put <name> --pattern GLOB [--approvals N] [--author-may-approve] [--approver-role editor|admin] [--decline-blocks] [--expiry 72h]",
		Short:   "Create or replace an approval policy",
		Example: "  sluice policy put pay --pattern 'pay-*' --approvals 1 --decline-blocks",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			p.Name = args[0]
			out, err := cl.PutPolicy(cmd.Context(), p)
			if err != nil {
				return err
			}
			if a.json() {
				return marshalJSON(a.stdout(), out)
			}
			_, err = fmt.Fprintf(a.stdout(), "policy %s: changes to %s need %d approval(s)\n", out.Name, out.Pattern, out.Approvals)
			return err
		},
	}
	put.Flags().StringVar(&p.Pattern, "pattern", "", "service or group name or glob (required)")
	put.Flags().IntVar(&p.Approvals, "approvals", 1, "approvals needed")
	put.Flags().BoolVar(&p.AuthorMayApprove, "author-may-approve", false, "let the author's own approval count")
	put.Flags().StringVar(&p.ApproverRole, "approver-role", "editor", "who approves: editor (editors and admins of the service) or admin")
	put.Flags().BoolVar(&p.DeclineBlocks, "decline-blocks", false, "any standing decline blocks applying")
	put.Flags().StringVar(&p.Expiry, "expiry", "", "how long a change request stays open (default 168h)")
	del := &cobra.Command{
		Use: "delete <name>", Short: "Delete an approval policy", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := a.client()
			if err != nil {
				return err
			}
			if err := cl.DeletePolicy(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout(), "policy %s deleted\n", args[0])
			return err
		},
	}
	c.AddCommand(list, get, put, del)
	return c
}

// dryRunOrPublish runs the dry run when dry is set (printing it), else
// publish, whose *api.Pending is printed as the change request it is.
// done reports that the command's output is written.
func (a *app) dryRunOrPublish(ctx context.Context, dry bool, dryRun func(context.Context) (api.DryRun, error), publish func(context.Context) error) error {
	if dry {
		d, err := dryRun(ctx)
		if err != nil {
			return err
		}
		if a.json() {
			return marshalJSON(a.stdout(), d)
		}
		printDryRun(a.stdout(), d)
		if !d.Valid {
			return fmt.Errorf("%d violation(s): a publish would be refused", len(d.Violations)+d.ViolationsOmitted)
		}
		return nil
	}
	return publish(ctx)
}

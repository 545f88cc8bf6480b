package cli

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

func (a *app) historyCmd(s scope) *cobra.Command {
	var limit int
	var before int64
	c := &cobra.Command{
		Use:   "history <" + s.noun() + ">",
		Short: "List revisions, newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runHistory(cmd.Context(), s, args[0], limit, before)
		},
	}
	c.Flags().IntVar(&limit, "limit", 20, "how many revisions to list (the server caps it)")
	c.Flags().Int64Var(&before, "before", 0, "list revisions older than this one (for paging)")
	return c
}

func (a *app) runHistory(ctx context.Context, s scope, name string, limit int, before int64) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	revs, err := c.Revisions(ctx, s.ref(name), before, limit)
	if err != nil {
		return err
	}
	if a.json() {
		return marshalJSON(a.stdout(), api.RevisionList{Revisions: api.FromRevisions(revs)})
	}
	t := newTable(a.stdout(), "REVISION", "TIME", "AUTHOR", "FILES", "MESSAGE")
	for _, r := range revs {
		m := r.Message
		if r.RollbackOf > 0 && !strings.Contains(m, "rollback") {
			m = fmt.Sprintf("%s (rollback to %d)", m, r.RollbackOf)
		}
		t.row(r.Number, r.Time, r.Author, configsvc.Truncate(strings.Join(fileNames(r), ","), 39), configsvc.Truncate(m, 71))
	}
	return t.flush()
}

func (a *app) diffCmd(s scope) *cobra.Command {
	return &cobra.Command{
		Use:   "diff <" + s.noun() + "> [from] [to]",
		Short: "Show what changed between two revisions (unified diff per file)",
		Long: "Show the per-file status and unified diff between revisions from and to.\n" +
			"to defaults to the newest revision and from to the one before to;\n" +
			"revision 0 is the empty state before the first publish.",
		Args: cobra.RangeArgs(1, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			from, to := int64(-1), int64(-1)
			var err error
			if len(args) > 1 {
				if from, err = parseRevision("from", args[1]); err != nil {
					return err
				}
			}
			if len(args) > 2 {
				if to, err = parseRevision("to", args[2]); err != nil {
					return err
				}
			}
			return a.runDiff(cmd.Context(), s, args[0], from, to)
		},
	}
}

func parseRevision(what, s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q: must be a revision number", what, s)
	}
	return n, nil
}

func (a *app) runDiff(ctx context.Context, s scope, name string, from, to int64) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	d, err := c.Diff(ctx, s.ref(name), from, to)
	if err != nil {
		return err
	}
	if a.json() {
		return marshalJSON(a.stdout(), d)
	}
	w := a.stdout()
	if from < 0 || to < 0 {
		from, to = d.From, d.To
	}
	changed := 0
	for _, f := range d.Files {
		if f.Status == "unchanged" {
			continue
		}
		changed++
		fmt.Fprintf(w, "%s %s\n", f.Status, f.File)
		if text := f.Diff; text != "" {
			fmt.Fprint(w, text)
			if !strings.HasSuffix(text, "\n") {
				fmt.Fprintln(w)
			}
		}
	}
	if changed == 0 {
		_, err := fmt.Fprintf(w, "%s: no differences between revisions %d and %d\n", name, from, to)
		return err
	}
	return nil
}

func (a *app) rollbackCmd(s scope) *cobra.Command {
	var to int64
	var files []string
	var msg string
	var ifMatch int64
	c := &cobra.Command{
		Use:   "rollback <" + s.noun() + "> --to N [--file f]… [-m message]",
		Short: "Publish a new revision whose content equals revision N",
		Long: "Roll back by publishing a new revision whose content equals revision N,\n" +
			"for the whole " + s.noun() + " or only the files named with --file. History is\n" +
			"never rewritten: the rollback is itself a revision you can diff and undo.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("to") {
				return fmt.Errorf("--to N is required: the revision whose content to restore (see `sluice history %s`)", args[0])
			}
			if !cmd.Flags().Changed("if-match") {
				ifMatch = noMatch
			}
			return a.runRollback(cmd.Context(), s, args[0], to, files, msg, ifMatch)
		},
	}
	c.Flags().Int64Var(&ifMatch, "if-match", 0, "roll back only if this revision is still the newest")
	c.Flags().Int64Var(&to, "to", 0, "revision whose content to restore (required)")
	c.Flags().StringArrayVar(&files, "file", nil, "restore only this file (repeatable)")
	c.Flags().StringVarP(&msg, "message", "m", "", "revision message (default \"rollback to revision N\")")
	a.addWriteFlags(c)
	return c
}

func (a *app) runRollback(ctx context.Context, s scope, name string, to int64, files []string, msg string, ifMatch int64) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	var opts []api.WriteOption
	if ifMatch >= 0 {
		opts = append(opts, api.IfMatch(ifMatch))
	}
	req := api.RollbackRequest{ToRevision: to, Files: files, Message: msg}
	opts = append(opts, a.writeOpts()...)
	if a.dryRun {
		return a.dryRunOrPublish(ctx, true, func(ctx context.Context) (api.DryRun, error) {
			return c.DryRunRollback(ctx, s.ref(name), req, opts...)
		}, nil)
	}
	rev, err := c.Rollback(ctx, s.ref(name), req, opts...)
	if done, err := a.pending(err); done {
		return err
	}
	if err = a.explain(err); isStatus(err, http.StatusPreconditionFailed) {
		return fmt.Errorf("%w\n%s: revision %d is no longer the newest; nothing was rolled back", err, name, ifMatch)
	}
	if err != nil {
		return err
	}
	if a.json() {
		return marshalJSON(a.stdout(), api.FromRevision(rev, false))
	}
	_, err = fmt.Fprintf(a.stdout(), "%s: rolled back to revision %d as revision %d (%s)\n", name, to, rev.Number, strings.Join(fileNames(rev), ", "))
	return err
}

package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

func (a *app) getCmd(s scope) *cobra.Command {
	var rev int64
	c := &cobra.Command{
		Use:   "get <" + s.noun() + "> <file>",
		Short: "Print a config file (at the head, or at --revision)",
		Long: "Print a config file's content exactly as stored. With -o json, print\n" +
			"{\"" + s.noun() + "\",\"file\",\"revision\",\"content\"} instead.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runGet(cmd.Context(), s, args[0], args[1], rev)
		},
	}
	c.Flags().Int64Var(&rev, "revision", 0, "revision to read (default: the head)")
	return c
}

func (a *app) runGet(ctx context.Context, s scope, name, file string, rev int64) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	f, err := c.File(ctx, s.ref(name), file, rev)
	if err != nil {
		return err
	}
	if a.json() {
		return marshalJSON(a.stdout(), map[string]any{s.noun(): name, "file": file, "revision": f.Revision, "content": string(f.Content)})
	}
	_, err = a.stdout().Write(f.Content)
	return err
}

func (a *app) putCmd(s scope) *cobra.Command {
	var msg string
	c := &cobra.Command{
		Use:   "put <" + s.noun() + "> <file> [path|-]",
		Short: "Publish one config file from a local file or stdin",
		Long: "Publish one config file as a new revision. The content comes from the\n" +
			"local path, or from stdin when the path is \"-\" or left out. The server\n" +
			"validates it for the file's format and refuses it with the line and\n" +
			"column of the error. With --if-match N the publish is refused (412)\n" +
			"unless revision N is still the newest.",
		Args: cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			content, ifMatch, err := a.putInput(cmd, args, 2)
			if err != nil {
				return err
			}
			return a.runPut(cmd.Context(), s, args[0], args[1], content, msg, ifMatch)
		},
	}
	c.Flags().StringVarP(&msg, "message", "m", "", "revision message")
	c.Flags().Int64("if-match", 0, "publish only if this revision is still the newest")
	a.addWriteFlags(c)
	return c
}

// putInput reads what a put command publishes: the content of the path
// args[i] (stdin when it is "-" or left out, see readSource) and the
// revision of --if-match (noMatch when the flag is not given).
func (a *app) putInput(cmd *cobra.Command, args []string, i int) (content []byte, ifMatch int64, err error) {
	src := "-"
	if len(args) > i {
		src = args[i]
	}
	if content, err = a.readSource(src); err != nil {
		return nil, 0, err
	}
	ifMatch = noMatch
	if cmd.Flags().Changed("if-match") {
		ifMatch, _ = cmd.Flags().GetInt64("if-match")
	}
	return content, ifMatch, nil
}

// addWriteFlags adds --dry-run and --emergency to a publishing command.
func (a *app) addWriteFlags(c *cobra.Command) {
	c.Flags().BoolVar(&a.dryRun, "dry-run", false, "publish nothing: show the validation, the diff against the head and who it would hit")
	c.Flags().StringVar(&a.emergency, "emergency", "", "admins: publish at once past an approval policy, giving the reason (audited, listed for review)")
}

// writeOpts returns the options of the write flags.
func (a *app) writeOpts() []api.WriteOption {
	if a.emergency == "" {
		return nil
	}
	return []api.WriteOption{api.WithEmergency(a.emergency)}
}

// readSource reads a local file, or stdin for "-". It refuses to wait on an
// interactive terminal.
func (a *app) readSource(src string) ([]byte, error) {
	if src != "-" {
		b, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", src, err)
		}
		return b, nil
	}
	if f, ok := a.env.Stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return nil, errors.New("no content: give a file path, or pipe the content on stdin")
		}
	}
	if a.env.Stdin == nil {
		return nil, errors.New("no content: give a file path")
	}
	b, err := io.ReadAll(a.env.Stdin)
	if err != nil {
		return nil, fmt.Errorf("read stdin: %w", err)
	}
	return b, nil
}

func (a *app) runPut(ctx context.Context, s scope, name, file string, content []byte, msg string, ifMatch int64) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	if a.dryRun {
		var opts []api.WriteOption
		if ifMatch >= 0 {
			opts = append(opts, api.IfMatch(ifMatch))
		}
		return a.dryRunOrPublish(ctx, true, func(ctx context.Context) (api.DryRun, error) {
			return c.DryRunPutFile(ctx, s.ref(name), file, content, append(opts, a.writeOpts()...)...)
		}, nil)
	}
	rev, err := putFile(ctx, c, s, name, file, content, msg, ifMatch, a.writeOpts()...)
	if done, err := a.pending(err); done {
		return err
	}
	if isStatus(err, http.StatusPreconditionFailed) {
		return fmt.Errorf("%w\n%s/%s: revision %d is no longer the newest; nothing was published. Read the current content (sluice get) and publish again", err, name, file, ifMatch)
	}
	if err != nil {
		return err
	}
	return a.printPublished(rev, name, []string{file})
}

// noMatch means "no If-Match": publish onto whatever the head is.
const noMatch = -1

// putFile publishes one file; ifMatch ≥ 0 is sent as If-Match.
func putFile(ctx context.Context, c *api.Client, s scope, name, file string, content []byte, msg string, ifMatch int64, extra ...api.WriteOption) (configsvc.Revision, error) {
	if strings.ContainsAny(msg, "\r\n") {
		return configsvc.Revision{}, errors.New("-m: a one-file put takes a one-line message; use `sluice publish` for a multi-line message")
	}
	opts := append([]api.WriteOption{api.WithMessage(msg)}, extra...)
	if ifMatch >= 0 {
		opts = append(opts, api.IfMatch(ifMatch))
	}
	return c.PutFile(ctx, s.ref(name), file, content, opts...)
}

// fileNames returns the names of the files a revision changed, marking
// deletions with a leading "-".
func fileNames(r configsvc.Revision) []string {
	out := make([]string, len(r.Changes))
	for i, c := range r.Changes {
		out[i] = c.File
		if c.Delete {
			out[i] = "-" + c.File
		}
	}
	return out
}

// printPublished reports the revision a publish created.
func (a *app) printPublished(rev configsvc.Revision, name string, files []string) error {
	if a.json() {
		return marshalJSON(a.stdout(), api.FromRevision(rev, false))
	}
	if names := fileNames(rev); len(names) > 0 {
		files = names
	}
	_, err := fmt.Fprintf(a.stdout(), "%s: published revision %d (%s)\n", name, rev.Number, strings.Join(files, ", "))
	return err
}

func (a *app) editCmd(s scope) *cobra.Command {
	var msg string
	c := &cobra.Command{
		Use:   "edit <" + s.noun() + "> <file>",
		Short: "Edit a config file in $EDITOR and publish it",
		Long: "Open the file's current content in $VISUAL or $EDITOR (default vi) and\n" +
			"publish what you save, only if nobody published the " + s.noun() + " meanwhile\n" +
			"(If-Match on the revision read). When someone did, or the content does\n" +
			"not validate, nothing is published and your edited copy is kept: re-run\n" +
			"edit to start from the newest revision. A file that does not exist yet\n" +
			"starts empty.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runEdit(cmd.Context(), s, args[0], args[1], msg)
		},
	}
	c.Flags().StringVarP(&msg, "message", "m", "", "revision message (default \"edit <file>\")")
	a.addWriteFlags(c)
	return c
}

func (a *app) runEdit(ctx context.Context, s scope, name, file string, msg string) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	f, err := c.File(ctx, s.ref(name), file, 0)
	if isStatus(err, http.StatusNotFound) {
		// A new file: start empty from the current head, if the service exists.
		head, herr := c.Head(ctx, s.ref(name))
		if herr != nil {
			return herr
		}
		f, err = api.FileContent{Revision: head.Revision}, nil
	}
	if err != nil {
		return err
	}
	content, rev := f.Content, f.Revision
	// Keep the extension so the editor highlights the format.
	tmp, err := os.CreateTemp(a.env.Getenv("TMPDIR"), "sluice-edit-*-"+file)
	if err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	path := tmp.Name()
	_, werr := tmp.Write(content)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(path)
		return fmt.Errorf("edit: %w", werr)
	}
	if err := a.runEditor(ctx, path); err != nil {
		os.Remove(path)
		return err
	}
	edited, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	if bytes.Equal(edited, content) {
		os.Remove(path)
		_, err := fmt.Fprintf(a.stderr(), "%s/%s: no changes; nothing published\n", name, file)
		return err
	}
	if msg == "" {
		msg = "edit " + file
	}
	if a.dryRun {
		err := a.dryRunOrPublish(ctx, true, func(ctx context.Context) (api.DryRun, error) {
			return c.DryRunPutFile(ctx, s.ref(name), file, edited, append([]api.WriteOption{api.IfMatch(rev)}, a.writeOpts()...)...)
		}, nil)
		fmt.Fprintf(a.stderr(), "%s/%s: nothing was published (--dry-run); your edited copy is kept at %s\n", name, file, path)
		return err
	}
	published, err := putFile(ctx, c, s, name, file, edited, msg, rev, a.writeOpts()...)
	if done, perr := a.pending(err); done {
		os.Remove(path)
		return perr
	}
	switch err = a.explain(err); {
	case isStatus(err, http.StatusPreconditionFailed):
		return fmt.Errorf("%s/%s changed on the server after you opened it at revision %d; nothing was published.\n"+
			"Your edited copy is kept at %s. Re-run `sluice edit %s %s` to edit the newest revision", name, file, rev, path, name, file)
	case err != nil:
		return fmt.Errorf("%w\nnothing was published; your edited copy is kept at %s", err, path)
	}
	os.Remove(path)
	return a.printPublished(published, name, []string{file})
}

// runEditor runs $VISUAL or $EDITOR (which may carry arguments, e.g.
// "code --wait") on path, attached to the process's terminal.
func (a *app) runEditor(ctx context.Context, path string) error {
	editor := firstNonEmpty(a.env.Getenv("VISUAL"), a.env.Getenv("EDITOR"), "vi")
	argv := strings.Fields(editor)
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], path)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = a.env.Stdin, a.env.Stdout, a.env.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("editor %q failed; nothing published: %w", editor, err)
	}
	return nil
}

func (a *app) publishCmd(s scope) *cobra.Command {
	var files, deletes []string
	var msg string
	var base int64
	c := &cobra.Command{
		Use:   "publish <" + s.noun() + "> -f file [-f file]… [--delete file]… -m message",
		Short: "Publish several files as one revision, atomically",
		Long: "Publish several files at once as one revision: all of them or none.\n" +
			"-f takes a local path (the config file keeps its base name) or\n" +
			"name=path to publish under another name. --base N refuses the publish\n" +
			"unless N is still the newest revision (default: publish onto the newest).",
		Example: "  sluice publish orders -f db.yaml -f features.json -m \"enable checkout v2\"\n" +
			"  sluice publish orders -f app.yaml=./build/orders.yaml --delete old.yaml -m cleanup",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runPublish(cmd.Context(), s, args[0], files, deletes, msg, base, cmd.Flags().Changed("base"))
		},
	}
	c.Flags().StringArrayVarP(&files, "file", "f", nil, "local file to publish, as path or name=path (repeatable)")
	c.Flags().StringArrayVar(&deletes, "delete", nil, "config file to delete (repeatable)")
	c.Flags().StringVarP(&msg, "message", "m", "", "revision message")
	c.Flags().Int64Var(&base, "base", 0, "publish only if this revision is still the newest")
	a.addWriteFlags(c)
	return c
}

func (a *app) runPublish(ctx context.Context, s scope, name string, files, deletes []string, msg string, base int64, baseSet bool) error {
	if len(files)+len(deletes) == 0 {
		return errors.New("nothing to publish: give -f file and/or --delete file")
	}
	body := api.PublishRequest{Message: msg}
	var names []string
	for _, spec := range files {
		fname, path := filepath.Base(spec), spec
		if i := strings.IndexByte(spec, '='); i > 0 {
			fname, path = spec[:i], spec[i+1:]
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("-f %s: %w", spec, err)
		}
		body.Changes = append(body.Changes, api.PutChange(fname, b))
		names = append(names, fname)
	}
	for _, d := range deletes {
		body.Changes = append(body.Changes, api.DeleteChange(d))
		names = append(names, "-"+d)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	if baseSet {
		body.BaseRevision = &base
	}
	if a.dryRun {
		return a.dryRunOrPublish(ctx, true, func(ctx context.Context) (api.DryRun, error) {
			return c.DryRunPublish(ctx, s.ref(name), body, a.writeOpts()...)
		}, nil)
	}
	rev, err := c.Publish(ctx, s.ref(name), body, a.writeOpts()...)
	if done, err := a.pending(err); done {
		return err
	}
	if err = a.explain(err); baseSet && (isStatus(err, http.StatusConflict) || isStatus(err, http.StatusPreconditionFailed)) {
		return fmt.Errorf("%w\n%s: revision %d is no longer the newest; nothing was published. Check `sluice history %s` and publish again", err, name, base, name)
	}
	if err != nil {
		return err
	}
	sort.Strings(names)
	return a.printPublished(rev, name, names)
}

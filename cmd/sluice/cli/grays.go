package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// grayWhere is where a gray command looks for a gray: --service or
// --shared, else every service and group the caller may read.
type grayWhere struct {
	service, shared string
}

func (w *grayWhere) register(c *cobra.Command) {
	c.Flags().StringVarP(&w.service, "service", "s", "", "the service the gray belongs to (default: look in every service and group)")
	c.Flags().StringVar(&w.shared, "shared", "", "the shared group the gray belongs to")
}

// ref returns the ref the flags name; ok is false when they name none.
func (w grayWhere) ref() (configsvc.Ref, bool, error) {
	switch {
	case w.service != "" && w.shared != "":
		return configsvc.Ref{}, false, errors.New("--service and --shared: give one")
	case w.service != "":
		return configsvc.Service(w.service), true, nil
	case w.shared != "":
		return configsvc.Group(w.shared), true, nil
	}
	return configsvc.Ref{}, false, nil
}

// selectorFlags are the parts of a selector given on the command line.
type selectorFlags struct {
	percent   float64
	instances []string
	labels    []string
}

func (s *selectorFlags) register(c *cobra.Command, verb string) {
	c.Flags().Float64Var(&s.percent, "percent", 0, "sticky share of the instances, 0 to 100 (two decimals)"+verb)
	c.Flags().StringSliceVar(&s.instances, "instances", nil, "instance ids (comma-separated or repeated)")
	c.Flags().StringArrayVar(&s.labels, "labels", nil, "labels an instance must all carry, k=v[,k=v…]; repeat for alternatives")
}

// parseLabels reads one --labels value: "zone=b,canary=true".
func parseLabels(spec string) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range strings.Split(spec, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("--labels %q: must be key=value[,key=value…], e.g. zone=b", spec)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("--labels %q: label %s given twice", spec, k)
		}
		m[k] = v
	}
	return m, nil
}

// selector returns the selector the flags describe.
func (s *selectorFlags) selector() (api.Selector, error) {
	sel := api.Selector{Percent: s.percent, Instances: slices.Clone(s.instances)}
	for _, spec := range s.labels {
		m, err := parseLabels(spec)
		if err != nil {
			return sel, err
		}
		sel.Labels = append(sel.Labels, m)
	}
	return sel, nil
}

func (a *app) grayCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "gray",
		Short: "Gray releases: a change for a chosen cohort of instances first, then widened, rolled out, promoted or abandoned",
		Long: "A gray is a changeset on top of a service's main line that only the\n" +
			"instances its selector matches apply (ids, label maps, or a sticky\n" +
			"percent). Widen it by hand, or start a rollout that moves its percent\n" +
			"through steps, checks the instances' acks and the proxies' error rates,\n" +
			"and promotes it (main gets its changes) or abandons it by itself.\n" +
			"See docs/gray.md.",
	}
	c.AddCommand(a.grayCreateCmd(), a.grayListCmd(), a.grayShowCmd(), a.grayWidenCmd(), a.grayPromoteCmd(), a.grayAbandonCmd(), a.grayRolloutCmd())
	return c
}

func (a *app) grayCreateCmd() *cobra.Command {
	var sel selectorFlags
	var deletes []string
	var name, msg string
	var base int64
	var shared bool
	c := &cobra.Command{
		Use:   "create <service> <file[=path]>… [--delete file]… (--percent P | --instances a,b | --labels k=v)",
		Short: "Create a gray: files for the instances the selector matches",
		Long: "Create a gray of the service (or with --shared, of a shared group): each\n" +
			"argument is a local file (the config file keeps its base name) or\n" +
			"name=path; --delete deletes a config file in the gray. The instances\n" +
			"the selector matches (any of --instances, --labels, --percent) apply\n" +
			"main + the gray; the others stay on main. One active gray per file.",
		Example: "  sluice gray create orders db.yaml --percent 10 -m 'bigger pool'\n" +
			"  sluice gray create orders features.json=./build/features.json --instances orders-7,orders-9\n" +
			"  sluice gray create orders db.yaml --labels zone=b --labels canary=true\n" +
			"  sluice gray create redis-common redis.yaml --shared --percent 5",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runGrayCreate(cmd.Context(), args[0], args[1:], deletes, sel, name, msg, base, cmd.Flags().Changed("base"), shared)
		},
	}
	sel.register(c, "")
	c.Flags().StringArrayVar(&deletes, "delete", nil, "config file the gray deletes (repeatable)")
	c.Flags().StringVar(&name, "name", "", "short name of the gray")
	c.Flags().StringVarP(&msg, "message", "m", "", "what the gray changes and why (the promote's default message)")
	c.Flags().Int64Var(&base, "base", 0, "create it only if this revision is still the newest of main")
	c.Flags().BoolVar(&shared, "shared", false, "the first argument is a shared group")
	return c
}

func (a *app) runGrayCreate(ctx context.Context, name string, files, deletes []string, sf selectorFlags, grayName, msg string, base int64, baseSet, shared bool) error {
	if len(files)+len(deletes) == 0 {
		return errors.New("nothing in the gray: give files (file or name=path) and/or --delete file")
	}
	sel, err := sf.selector()
	if err != nil {
		return err
	}
	if sel.IsZero() {
		fmt.Fprintln(a.stderr(), "note: no --percent, --instances or --labels: the gray reaches no instance until it is widened or rolled out")
	}
	req := api.GrayRequest{Name: grayName, Message: msg, Selector: sel}
	for _, spec := range files {
		fname, path := filepath.Base(spec), spec
		if i := strings.IndexByte(spec, '='); i > 0 {
			fname, path = spec[:i], spec[i+1:]
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("%s: %w", spec, err)
		}
		req.Changes = append(req.Changes, api.PutChange(fname, b))
	}
	for _, d := range deletes {
		req.Changes = append(req.Changes, api.DeleteChange(d))
	}
	if baseSet {
		req.BaseRevision = &base
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	ref := configsvc.Service(name)
	if shared {
		ref = configsvc.Group(name)
	}
	g, err := c.CreateGray(ctx, ref, req)
	if err != nil {
		return err
	}
	if a.json() {
		return marshalJSON(a.stdout(), api.FromGray(g, false))
	}
	_, err = fmt.Fprintf(a.stdout(), "created gray %s of %s: %s for %s\n", g.ID, g.Ref, strings.Join(changeNames(g.Changes), ","), selectorString(g.Selector))
	return err
}

// changeNames names the changes of a gray: "f" for a write, "-f" for a
// deletion.
func changeNames(changes []configsvc.Change) []string {
	out := make([]string, len(changes))
	for i, ch := range changes {
		out[i] = ch.File
		if ch.Delete {
			out[i] = "-" + ch.File
		}
	}
	sort.Strings(out)
	return out
}

// selectorString reads a selector: "10% | ids a,b | zone=b | canary=true".
func selectorString(s configsvc.Selector) string {
	var parts []string
	if s.Percent > 0 {
		parts = append(parts, strconv.FormatFloat(s.Percent, 'f', -1, 64)+"%")
	}
	if len(s.Instances) > 0 {
		parts = append(parts, "ids "+strings.Join(s.Instances, ","))
	}
	for _, m := range s.Labels {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			keys[i] = k + "=" + m[k]
		}
		parts = append(parts, strings.Join(keys, ","))
	}
	if len(parts) == 0 {
		return "nobody"
	}
	return strings.Join(parts, " | ")
}

func (a *app) grayListCmd() *cobra.Command {
	var shared bool
	c := &cobra.Command{
		Use:     "list [service]",
		Aliases: []string{"ls"},
		Short:   "List the grays of a service (active and ended), or every active gray",
		Long: "With a service (or --shared group), list its grays: active ones first,\n" +
			"then ended ones, newest first. Without, list the active grays of every\n" +
			"service and shared group you may read.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				if shared {
					return errors.New("--shared needs the group's name")
				}
				return a.runGrayListAll(cmd.Context())
			}
			ref := configsvc.Service(args[0])
			if shared {
				ref = configsvc.Group(args[0])
			}
			return a.runGrayList(cmd.Context(), ref)
		},
	}
	c.Flags().BoolVar(&shared, "shared", false, "the argument is a shared group")
	return c
}

func (a *app) runGrayList(ctx context.Context, ref configsvc.Ref) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	grays, err := c.Grays(ctx, ref)
	if err != nil {
		return err
	}
	return a.printGrays(grays, fmt.Sprintf("no grays of %s", ref))
}

// printGrays prints grays as a table, or as a GrayList with -o json.
func (a *app) printGrays(grays []configsvc.Gray, none string) error {
	if a.json() {
		return marshalJSON(a.stdout(), api.GrayList{Grays: api.FromGrays(grays)})
	}
	if len(grays) == 0 {
		_, err := fmt.Fprintln(a.stdout(), none)
		return err
	}
	t := newTable(a.stdout(), "ID", "OF", "NAME", "FILES", "SELECTOR", "STATE", "ROLLOUT", "UPDATED", "AUTHOR")
	for _, g := range grays {
		t.row(g.ID, g.Ref.String(), configsvc.Truncate(g.Name, 32), strings.Join(changeNames(g.Changes), ","), selectorString(g.Selector),
			stateString(g), rolloutString(g.Rollout), g.Updated, g.Author)
	}
	return t.flush()
}

// stateString is a gray's state, with the revision a promote created.
func stateString(g configsvc.Gray) string {
	if g.State == configsvc.GrayPromoted && g.EndedRevision > 0 {
		return fmt.Sprintf("promoted (r%d)", g.EndedRevision)
	}
	return string(g.State)
}

// rolloutString is "step 2/3 25% baking", or "" without a rollout.
func rolloutString(r *configsvc.Rollout) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf("step %d/%d %v%% %s", r.State.Step+1, len(r.Steps), r.State.Percent, r.State.State)
}

// runGrayListAll lists the active grays of every service and group the
// caller may read (those whose head has any).
func (a *app) runGrayListAll(ctx context.Context) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	refs, err := a.allRefs(ctx, c)
	if err != nil {
		return err
	}
	var (
		mu    sync.Mutex // guards grays
		grays []configsvc.Gray
	)
	err = eachRef(ctx, refs, func(ctx context.Context, ref configsvc.Ref) error {
		h, err := c.Head(ctx, ref)
		if err != nil || len(h.Grays) == 0 {
			return ignoreGone(err)
		}
		list, err := c.Grays(ctx, ref)
		if err != nil {
			return ignoreGone(err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, g := range list {
			if g.State == configsvc.GrayActive {
				grays = append(grays, g)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(grays, func(i, j int) bool {
		if grays[i].Ref != grays[j].Ref {
			return grays[i].Ref.String() < grays[j].Ref.String()
		}
		return grays[i].Created.Before(grays[j].Created)
	})
	return a.printGrays(grays, "no active grays")
}

// allRefs returns every service and group the caller may read.
func (a *app) allRefs(ctx context.Context, c *api.Client) ([]configsvc.Ref, error) {
	var refs []configsvc.Ref
	for _, kind := range []configsvc.Kind{configsvc.KindService, configsvc.KindGroup} {
		names, err := c.List(ctx, kind)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			refs = append(refs, configsvc.Ref{Kind: kind, Name: n})
		}
	}
	return refs, nil
}

// eachRef calls fn for every ref, eight at a time, and returns the first
// error.
func eachRef(ctx context.Context, refs []configsvc.Ref, fn func(context.Context, configsvc.Ref) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, 8)
	errc := make(chan error, len(refs))
	var wg sync.WaitGroup
	for _, ref := range refs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(ctx, ref); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// ignoreGone drops a not-found (a ref deleted while we looked).
func ignoreGone(err error) error {
	if errors.Is(err, configsvc.ErrNotFound) {
		return nil
	}
	return err
}

// findGray returns the ref of gray id: the one --service or --shared
// names, else the service or group among all the caller may read whose
// grays hold it.
func (a *app) findGray(ctx context.Context, c *api.Client, id string, where grayWhere) (configsvc.Ref, error) {
	if err := configsvc.ValidateGrayID(id); err != nil {
		return configsvc.Ref{}, err
	}
	if ref, ok, err := where.ref(); ok || err != nil {
		return ref, err
	}
	refs, err := a.allRefs(ctx, c)
	if err != nil {
		return configsvc.Ref{}, err
	}
	var (
		mu    sync.Mutex // guards found
		found []configsvc.Ref
	)
	err = eachRef(ctx, refs, func(ctx context.Context, ref configsvc.Ref) error {
		list, err := c.Grays(ctx, ref)
		if err != nil {
			return ignoreGone(err)
		}
		for _, g := range list {
			if g.ID == id {
				mu.Lock()
				found = append(found, ref)
				mu.Unlock()
			}
		}
		return nil
	})
	if err != nil {
		return configsvc.Ref{}, err
	}
	switch len(found) {
	case 0:
		return configsvc.Ref{}, fmt.Errorf("gray %s: not found in the %d services and groups you may read: %w", id, len(refs), configsvc.ErrNotFound)
	case 1:
		return found[0], nil
	}
	return configsvc.Ref{}, fmt.Errorf("gray %s is in %s and %s: say which with --service or --shared", id, found[0], found[1])
}

// grayCommand is a gray command taking an id and --service/--shared.
func (a *app) grayCommand(c *cobra.Command, where *grayWhere, run func(ctx context.Context, cl *api.Client, ref configsvc.Ref, id string) error) *cobra.Command {
	where.register(c)
	c.Args = cobra.ExactArgs(1)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		ref, err := a.findGray(cmd.Context(), cl, args[0], *where)
		if err != nil {
			return err
		}
		return run(cmd.Context(), cl, ref, args[0])
	}
	return c
}

func (a *app) grayShowCmd() *cobra.Command {
	var where grayWhere
	return a.grayCommand(&cobra.Command{
		Use:   "show <gray-id>",
		Short: "Show a gray: its changes, selector, rollout and its cohort's live statuses",
		Long: "Show a gray with its cohort: every live instance the selector matches,\n" +
			"applied, pending or rejected (with the reason), its rollout's steps and\n" +
			"where it is, and the files of the gray main changed since it was created.",
	}, &where, a.runGrayShow)
}

func (a *app) runGrayShow(ctx context.Context, c *api.Client, ref configsvc.Ref, id string) error {
	v, err := c.GrayView(ctx, ref, id)
	if err != nil {
		return err
	}
	if a.json() {
		return marshalJSON(a.stdout(), v)
	}
	g := v.Domain()
	g.Ref = ref
	w := a.stdout()
	fmt.Fprintf(w, "gray %s of %s", g.ID, ref)
	if g.Name != "" {
		fmt.Fprintf(w, ": %s", g.Name)
	}
	fmt.Fprintf(w, "\nstate:     %s", stateString(g))
	if g.EndReason != "" {
		fmt.Fprintf(w, " (%s)", g.EndReason)
	}
	fmt.Fprintf(w, "\ncreated:   %s by %s on revision %d\n", fmtTime(g.Created), g.Author, g.BaseRevision)
	if g.Message != "" {
		fmt.Fprintf(w, "message:   %s\n", firstLine(g.Message))
	}
	fmt.Fprintf(w, "selector:  %s\n", selectorString(g.Selector))
	fmt.Fprintf(w, "changes:   %s\n", strings.Join(changeNames(g.Changes), ", "))
	if len(g.MainChanged) > 0 {
		fmt.Fprintf(w, "main changed since: %s (the gray's version wins in its cohort)\n", strings.Join(g.MainChanged, ", "))
	}
	if r := g.Rollout; r != nil {
		a.printRollout(w, r)
	}
	if g.State != configsvc.GrayActive {
		return nil
	}
	if len(v.Cohort) == 0 {
		_, err := fmt.Fprintln(w, "cohort:    no live instance matches")
		return err
	}
	fmt.Fprintf(w, "cohort:    %s\n\n", cohortCounts(v.Cohort))
	t := newTable(w, "INSTANCE", "SERVICE", "LABELS", "STATUS", "REASON")
	for _, m := range v.Cohort {
		t.row(m.ID, m.Service, labelsString(m.Labels), string(m.Status), configsvc.Truncate(m.Reason, 60))
	}
	return t.flush()
}

// printRollout prints a rollout's steps, where it is and why.
func (a *app) printRollout(w io.Writer, r *configsvc.Rollout) {
	steps := make([]string, len(r.Steps))
	for i, s := range r.Steps {
		steps[i] = fmt.Sprintf("%v%%:%s", s.Percent, time.Duration(s.Bake))
		if i == r.State.Step {
			steps[i] = "[" + steps[i] + "]"
		}
	}
	fmt.Fprintf(w, "rollout:   %s, max %d rejected, max error rate %v, apply timeout %s\n", strings.Join(steps, " "), r.MaxRejected, r.MaxErrorRate, time.Duration(r.ApplyTimeout))
	fmt.Fprintf(w, "           %s since %s", rolloutString(r), fmtTime(r.State.Since))
	if r.State.Reason != "" {
		fmt.Fprintf(w, ": %s", r.State.Reason)
	}
	fmt.Fprintln(w)
	if f := r.State.Failed; f != nil {
		keys := make([]string, 0, len(f.Figures))
		for k := range f.Figures {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			keys[i] = k + "=" + strconv.FormatFloat(f.Figures[k], 'g', 6, 64)
		}
		fmt.Fprintf(w, "           failed gate %s: instances %s; %s\n", f.Gate, strings.Join(f.Instances, ","), strings.Join(keys, " "))
	}
}

func cohortCounts(ms []configsvc.CohortMember) string {
	n := map[configsvc.GrayApplyStatus]int{}
	for _, m := range ms {
		n[m.Status]++
	}
	return fmt.Sprintf("%d instances: %d applied, %d pending, %d rejected", len(ms), n[configsvc.GrayApplied], n[configsvc.GrayPending], n[configsvc.GrayRejected])
}

func labelsString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ",")
}

func (a *app) grayWidenCmd() *cobra.Command {
	var where grayWhere
	var sf selectorFlags
	var replace bool
	c := a.grayCommand(&cobra.Command{
		Use:   "widen <gray-id> [--percent P] [--instances a,b] [--labels k=v]… [--replace]",
		Short: "Change a gray's cohort: raise its percent, add instances or label maps",
		Long: "Change the selector of an active gray. --percent sets the percent (a\n" +
			"sticky share: raising it only adds instances, lowering it only removes\n" +
			"them); --instances and --labels add to those the selector has. With\n" +
			"--replace the flags are the whole new selector (to narrow it). Refused\n" +
			"while a rollout drives the gray.",
		Example: "  sluice gray widen g-3f9a0c1d2e4b --percent 50\n" +
			"  sluice gray widen g-3f9a0c1d2e4b --labels zone=c\n" +
			"  sluice gray widen g-3f9a0c1d2e4b --instances orders-7 --replace",
	}, &where, func(ctx context.Context, cl *api.Client, ref configsvc.Ref, id string) error {
		return a.runGrayWiden(ctx, cl, ref, id, sf, replace)
	})
	sf.register(c, " (default: unchanged)")
	c.Flags().BoolVar(&replace, "replace", false, "the flags replace the whole selector instead of adding to it")
	return c
}

func (a *app) runGrayWiden(ctx context.Context, c *api.Client, ref configsvc.Ref, id string, sf selectorFlags, replace bool) error {
	add, err := sf.selector()
	if err != nil {
		return err
	}
	sel := add
	if !replace {
		g, err := c.Gray(ctx, ref, id)
		if err != nil {
			return err
		}
		sel = g.Selector
		if sf.percent > 0 {
			sel.Percent = sf.percent
		}
		for _, inst := range add.Instances {
			if !slices.Contains(sel.Instances, inst) {
				sel.Instances = append(sel.Instances, inst)
			}
		}
		sel.Labels = append(sel.Labels, add.Labels...)
		if sf.percent > 0 && sf.percent < g.Selector.Percent {
			fmt.Fprintf(a.stderr(), "note: %v%% is below the gray's %v%%: the cohort narrows\n", sf.percent, g.Selector.Percent)
		}
	}
	g, err := c.SetGraySelector(ctx, ref, id, sel)
	if err != nil {
		return err
	}
	if a.json() {
		return marshalJSON(a.stdout(), api.FromGray(g, false))
	}
	_, err = fmt.Fprintf(a.stdout(), "gray %s now reaches %s (version %d)\n", id, selectorString(g.Selector), g.Version)
	return err
}

func (a *app) grayPromoteCmd() *cobra.Command {
	var where grayWhere
	var msg string
	var force bool
	c := a.grayCommand(&cobra.Command{
		Use:   "promote <gray-id> [-m message] [--force]",
		Short: "Promote a gray: main gets its changes as the next revision",
		Long: "Publish main + the gray's changes as main's next revision and end the\n" +
			"gray promoted. Refused while instances of its cohort rejected it or have\n" +
			"not applied it yet (they are listed), unless --force.",
	}, &where, func(ctx context.Context, cl *api.Client, ref configsvc.Ref, id string) error {
		res, err := cl.PromoteGray(ctx, ref, id, api.PromoteRequest{Message: msg, Force: force})
		if ms := api.NotReadyInstances(err); len(ms) > 0 && !a.json() {
			t := newTable(a.stderr(), "INSTANCE", "SERVICE", "STATUS", "REASON")
			for _, m := range ms {
				t.row(m.ID, m.Service, string(m.Status), configsvc.Truncate(m.Reason, 60))
			}
			_ = t.flush()
			return fmt.Errorf("%w\nnothing was promoted; wait for the instances, or promote with --force", a.explain(err))
		}
		if err != nil {
			return err
		}
		if a.json() {
			return marshalJSON(a.stdout(), res)
		}
		_, err = fmt.Fprintf(a.stdout(), "promoted gray %s: %s revision %d\n", id, ref, res.Revision)
		return err
	})
	c.Flags().StringVarP(&msg, "message", "m", "", "the revision's message (default: promote gray ID: NAME)")
	c.Flags().BoolVar(&force, "force", false, "promote even while cohort instances rejected it or have not applied it")
	return c
}

func (a *app) grayAbandonCmd() *cobra.Command {
	var where grayWhere
	return a.grayCommand(&cobra.Command{
		Use:   "abandon <gray-id>",
		Short: "Abandon a gray: its cohort returns to main",
	}, &where, func(ctx context.Context, cl *api.Client, ref configsvc.Ref, id string) error {
		g, err := cl.AbandonGray(ctx, ref, id)
		if err != nil {
			return err
		}
		if a.json() {
			return marshalJSON(a.stdout(), api.FromGray(g, false))
		}
		_, err = fmt.Fprintf(a.stdout(), "abandoned gray %s of %s\n", id, ref)
		return err
	})
}

// parseSteps reads --steps: "5%:2m,25%:5m,100%:2m" (the % is optional).
func parseSteps(spec string) ([]api.RolloutStep, error) {
	var steps []api.RolloutStep
	for _, part := range strings.Split(spec, ",") {
		pct, bake, ok := strings.Cut(strings.TrimSpace(part), ":")
		p, err := strconv.ParseFloat(strings.TrimSuffix(pct, "%"), 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("--steps %q: each step is PERCENT%%:BAKE, e.g. 5%%:2m,25%%:5m,100%%:2m", spec)
		}
		d, err := time.ParseDuration(bake)
		if err != nil {
			return nil, fmt.Errorf("--steps %q: bake %q: %w", spec, bake, err)
		}
		steps = append(steps, api.RolloutStep{Percent: p, Bake: configsvc.Duration(d)})
	}
	return steps, nil
}

func (a *app) grayRolloutCmd() *cobra.Command {
	var where grayWhere
	var steps string
	var maxRejected int
	var maxErrorRate float64
	var applyTimeout time.Duration
	c := a.grayCommand(&cobra.Command{
		Use:   "rollout <gray-id> --steps P%:BAKE,… [--max-error-rate R] [--max-rejected N] [--apply-timeout D]",
		Short: "Start a progressive rollout: the server moves the percent through the steps and promotes or abandons the gray",
		Long: "Each step sets the gray's percent, waits until every instance of the\n" +
			"cohort applied it (--apply-timeout), then bakes for its time while the\n" +
			"gates are checked: at most --max-rejected instances rejected it, and the\n" +
			"cohort's 5xx/timeout ratio through the proxies stays at most\n" +
			"--max-error-rate (and not worse than the rest's by more). A failed gate\n" +
			"abandons the gray; after the last step bakes clean it is promoted.\n" +
			"Follow it with `sluice gray show ID`.",
		Example: "  sluice gray rollout g-3f9a0c1d2e4b --steps 5%:2m,25%:5m,100%:2m --max-error-rate 0.02",
	}, &where, func(ctx context.Context, cl *api.Client, ref configsvc.Ref, id string) error {
		st, err := parseSteps(steps)
		if err != nil {
			return err
		}
		g, err := cl.StartRollout(ctx, ref, id, api.RolloutRequest{Steps: st, MaxRejected: maxRejected, MaxErrorRate: maxErrorRate,
			ApplyTimeout: configsvc.Duration(applyTimeout)})
		if err != nil {
			return err
		}
		if a.json() {
			return marshalJSON(a.stdout(), api.FromGray(g, false))
		}
		fmt.Fprintf(a.stdout(), "rollout of gray %s started:\n", id)
		a.printRollout(a.stdout(), g.Rollout)
		return nil
	})
	c.Flags().StringVar(&steps, "steps", "", "the steps, PERCENT%:BAKE comma-separated, ascending (required)")
	c.Flags().IntVar(&maxRejected, "max-rejected", 0, "cohort instances that may reject the gray")
	c.Flags().Float64Var(&maxErrorRate, "max-error-rate", 0.01, "highest 5xx/timeout ratio of the cohort during a bake, 0 to 1")
	c.Flags().DurationVar(&applyTimeout, "apply-timeout", configsvc.DefaultRolloutApplyTimeout, "how long a step waits for the cohort to apply it")
	_ = c.MarkFlagRequired("steps")
	return c
}

package cli

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// CompletionTimeout bounds what shell completion asks the server: the
// shell waits for it at every Tab.
const CompletionTimeout = 2 * time.Second

// argKind is what a positional argument names, for shell completion.
type argKind int

const (
	argRef     argKind = iota // a service, or a group in the shared scope
	argGroup                  // a shared group
	argFile                   // a config file of the ref given before it
	argPath                   // a local path: the shell completes it
	argNothing                // nothing to suggest
)

// addCompletions gives the commands under c (a verb, path its name and
// its parents' below the root) suggestions from the server: service and
// group names, config files of the chosen service, instance ids for
// `pin create --target`.
func (a *app) addCompletions(c *cobra.Command, path string) {
	switch path {
	case "get", "edit":
		c.ValidArgsFunction = a.completeArgs(serviceScope, argRef, argFile)
	case "shared get", "shared edit":
		c.ValidArgsFunction = a.completeArgs(groupScope, argRef, argFile)
	case "put":
		c.ValidArgsFunction = a.completeArgs(serviceScope, argRef, argFile, argPath)
	case "shared put":
		c.ValidArgsFunction = a.completeArgs(groupScope, argRef, argFile, argPath)
	case "publish", "history", "diff", "rollback", "watch", "instances", "services show", "services delete":
		c.ValidArgsFunction = a.completeArgs(serviceScope, argRef)
	case "shared publish", "shared history", "shared diff", "shared rollback", "shared watch",
		"shared show", "shared delete", "shared users":
		c.ValidArgsFunction = a.completeArgs(groupScope, argRef)
	case "link", "unlink":
		c.ValidArgsFunction = a.completeArgs(serviceScope, argRef, argGroup)
	case "pin create":
		_ = c.RegisterFlagCompletionFunc("target", a.completeTarget)
	case "gray create":
		c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveDefault // local files
			}
			return a.completeArgs(serviceScope, argRef)(cmd, args, toComplete)
		}
	case "gray list":
		c.ValidArgsFunction = a.completeArgs(serviceScope, argRef)
	case "gray show", "gray widen", "gray promote", "gray abandon", "gray rollout":
		c.ValidArgsFunction = a.completeGrayID
		_ = c.RegisterFlagCompletionFunc("service", a.completeArgs(serviceScope, argRef))
		_ = c.RegisterFlagCompletionFunc("shared", a.completeArgs(groupScope, argRef))
	}
	// Flags naming a config file of the first argument.
	switch path {
	case "rollback":
		_ = c.RegisterFlagCompletionFunc("file", a.completeFileFlag(serviceScope))
	case "shared rollback":
		_ = c.RegisterFlagCompletionFunc("file", a.completeFileFlag(groupScope))
	case "publish":
		_ = c.RegisterFlagCompletionFunc("delete", a.completeFileFlag(serviceScope))
	case "shared publish":
		_ = c.RegisterFlagCompletionFunc("delete", a.completeFileFlag(groupScope))
	}
	for _, sub := range c.Commands() {
		a.addCompletions(sub, path+" "+sub.Name())
	}
}

// completeArgs suggests the positional arguments kinds name, in order.
func (a *app) completeArgs(s scope, kinds ...argKind) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		kind := argNothing
		if len(args) < len(kinds) {
			kind = kinds[len(args)]
		}
		switch kind {
		case argRef:
			return a.suggest(cmd, toComplete, func(ctx context.Context, c *api.Client) ([]string, error) {
				return c.List(ctx, s.kind())
			})
		case argGroup:
			return a.suggest(cmd, toComplete, func(ctx context.Context, c *api.Client) ([]string, error) {
				return c.List(ctx, configsvc.KindGroup)
			})
		case argFile:
			return a.suggest(cmd, toComplete, a.files(s, args[0]))
		case argPath:
			return nil, cobra.ShellCompDirectiveDefault
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeFileFlag suggests the config files of the command's first
// argument for a flag naming one.
func (a *app) completeFileFlag(s scope) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return a.suggest(cmd, toComplete, a.files(s, args[0]))
	}
}

// completeTarget suggests --target SERVICE=INSTANCE: service names with
// "=" until one is typed, then that service's live instance ids.
func (a *app) completeTarget(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	svc, _, typed := strings.Cut(toComplete, "=")
	if !typed {
		names, dir := a.suggest(cmd, toComplete, func(ctx context.Context, c *api.Client) ([]string, error) {
			return c.List(ctx, configsvc.KindService)
		})
		for i, n := range names {
			names[i] = n + "="
		}
		return names, dir | cobra.ShellCompDirectiveNoSpace
	}
	return a.suggest(cmd, toComplete, func(ctx context.Context, c *api.Client) ([]string, error) {
		insts, err := c.Instances(ctx, svc)
		ids := make([]string, len(insts))
		for i, in := range insts {
			ids[i] = svc + "=" + in.ID
		}
		return ids, err
	})
}

// completeGrayID suggests the active grays of the service (or group) the
// command's --service (--shared) names; without one, nothing (looking
// through every service would not fit a Tab).
func (a *app) completeGrayID(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	svc, _ := cmd.Flags().GetString("service")
	grp, _ := cmd.Flags().GetString("shared")
	ref := configsvc.Service(svc)
	if grp != "" {
		ref = configsvc.Group(grp)
	}
	if len(args) > 0 || ref.Name == "" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return a.suggest(cmd, toComplete, func(ctx context.Context, c *api.Client) ([]string, error) {
		h, err := c.Head(ctx, ref)
		ids := make([]string, len(h.Grays))
		for i, g := range h.Grays {
			ids[i] = g.ID
		}
		return ids, err
	})
}

// files lists the config files of member name of scope s.
func (a *app) files(s scope, name string) func(context.Context, *api.Client) ([]string, error) {
	return func(ctx context.Context, c *api.Client) ([]string, error) {
		h, err := c.Head(ctx, s.ref(name))
		names := make([]string, 0, len(h.Files))
		for f := range h.Files {
			names = append(names, f)
		}
		return names, err
	}
}

// suggest asks the server with list and returns the answers that start
// with toComplete, sorted. Completion must stay quiet and quick: without a
// token, with bad connection flags, or when the server does not answer
// within CompletionTimeout (unreachable, 401, …) it suggests nothing and
// reports nothing.
func (a *app) suggest(cmd *cobra.Command, toComplete string, list func(context.Context, *api.Client) ([]string, error)) ([]cobra.Completion, cobra.ShellCompDirective) {
	const dir = cobra.ShellCompDirectiveNoFileComp
	if token, _, err := a.resolveToken(); err != nil || token == "" {
		return nil, dir
	}
	a.timeout = min(a.timeout, CompletionTimeout)
	if a.timeout <= 0 {
		a.timeout = CompletionTimeout
	}
	c, err := a.client()
	if err != nil {
		return nil, dir
	}
	defer c.Close()
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, CompletionTimeout)
	defer cancel()
	names, err := list(ctx, c)
	if err != nil {
		return nil, dir
	}
	var out []cobra.Completion
	for _, n := range names {
		if strings.HasPrefix(n, toComplete) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, dir
}

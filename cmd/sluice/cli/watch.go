package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

func (a *app) watchCmd(s scope) *cobra.Command {
	var since int64
	var count int
	c := &cobra.Command{
		Use:   "watch <" + s.noun() + "> [--since N] [--count N]",
		Short: "Print new revisions as they are published (server-sent events)",
		Long: "Follow the " + s.noun() + "'s event stream and print every revision published\n" +
			"after --since (default: from now on), one line each; with -o json, one\n" +
			"JSON object per line: {\"event\",\"id\",\"data\"}. A dropped connection is\n" +
			"resumed after the last revision printed. Ends on Ctrl-C, after --count\n" +
			"revisions, or when the " + s.noun() + " is deleted or its history compacted.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("since") {
				since = -1
			}
			return a.runWatch(cmd.Context(), s, args[0], since, count)
		},
	}
	c.Flags().Int64Var(&since, "since", 0, "print revisions after this one (default: only new ones)")
	c.Flags().IntVar(&count, "count", 0, "exit after this many revisions (default: run until interrupted)")
	return c
}

func (a *app) runWatch(ctx context.Context, s scope, name string, since int64, count int) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	ref := s.ref(name)
	if since < 0 {
		// Start from the head explicitly, so a reconnect before the first
		// new revision still resumes without a gap.
		h, err := c.Head(ctx, ref)
		if err != nil {
			return err
		}
		since = h.Revision
	}
	fmt.Fprintf(a.stderr(), "watching %s %s after revision %d (Ctrl-C to stop)\n", s.noun(), name, since)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seen := 0
	connected := false // the server accepted a stream once
	for ev := range c.Watch(wctx, ref, since) {
		var se *api.StreamError
		var ae *api.Error
		switch {
		case errors.As(ev.Err, &se):
			connected = connected || se.Opened
			if !connected || errors.As(se.Err, &ae) && ae.Status != http.StatusServiceUnavailable {
				return se.Err // never got a stream (a wrong address, a dead server), or refused
			}
			fmt.Fprintf(a.stderr(), "watch %s: %v; resuming in %s\n", name, a.explain(se.Err), se.Retry.Round(time.Millisecond))
		case errors.As(ev.Err, &ae) && ae.Status == 0:
			// An error event of the stream.
			connected = true
			if errors.Is(ae, configsvc.ErrCompacted) || errors.Is(ae, configsvc.ErrNotFound) {
				return fmt.Errorf("watch ended: %s (%s)", ae.Message, ae.Code)
			}
			if _, err := fmt.Fprintf(a.stderr(), "watch: %s (%s); still watching\n", ae.Message, ae.Code); err != nil {
				return err
			}
		case ev.Err != nil:
			return ev.Err // the server refused the stream (403, 404 …)
		default:
			connected = true
			if err := a.printEvent(ev); err != nil {
				return err
			}
			if ev.Revision != nil {
				seen++
				if count > 0 && seen >= count {
					return nil
				}
			}
		}
	}
	return nil // interrupted: a normal way to stop watching
}

// printEvent prints one revision or links event: a line, or with -o json
// {"event","id","data"} with the event's data as the server sent it.
func (a *app) printEvent(ev configsvc.Event) error {
	switch {
	case ev.Revision != nil && a.json():
		return json.NewEncoder(a.stdout()).Encode(map[string]any{"event": api.EventRevision, "id": strconv.FormatInt(ev.Revision.Number, 10), "data": api.FromRevision(*ev.Revision, true)})
	case ev.Revision != nil:
		r := ev.Revision
		_, err := fmt.Fprintf(a.stdout(), "revision %d  %s  %s  %s  %s\n", r.Number, fmtTime(r.Time), r.Author, strings.Join(fileNames(*r), ","), r.Message)
		return err
	case ev.LinksChanged && a.json():
		return json.NewEncoder(a.stdout()).Encode(map[string]any{"event": api.EventLinks, "id": "", "data": api.LinksData{Links: ev.Links}})
	case ev.LinksChanged:
		_, err := fmt.Fprintf(a.stdout(), "links  %s\n", strings.Join(ev.Links, ","))
		return err
	}
	return nil
}

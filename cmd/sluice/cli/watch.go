package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc/lifecycle"
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

// sseEvent is one server-sent event.
type sseEvent struct {
	id, name string
	data     []byte
}

// errStreamEnded reports a stream the server closed; the watch resumes.
var errStreamEnded = errors.New("event stream ended")

func (a *app) runWatch(ctx context.Context, s scope, name string, since int64, count int) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	if since < 0 {
		// Start from the head explicitly, so a reconnect before the first
		// new revision still resumes without a gap.
		var h headJSON
		if _, err := c.doJSON(ctx, http.MethodGet, s.path(name), nil, nil, &h); err != nil {
			return err
		}
		since = h.Revision
	}
	fmt.Fprintf(a.stderr(), "watching %s %s after revision %d (Ctrl-C to stop)\n", s.noun(), name, since)
	seen := 0
	backoff := time.Second
	connected := false
	var final error // an event that ends the watch (compacted, not_found) or an output error
	for {
		err := c.stream(ctx, s.path(name, "watch"), since, func() { connected = true }, func(ev sseEvent) (bool, error) {
			backoff = time.Second
			done, err := a.printEvent(ev)
			if err != nil || done {
				final = err
				return true, err
			}
			if ev.name == "revision" {
				if n, perr := strconv.ParseInt(ev.id, 10, 64); perr == nil {
					since = n
				}
				seen++
				if count > 0 && seen >= count {
					return true, nil
				}
			}
			return false, nil
		})
		var ae *apiError
		switch {
		case final != nil:
			return final
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return nil // interrupted: a normal way to stop watching
		case errors.As(err, &ae) && ae.Status != http.StatusServiceUnavailable:
			return err
		case !connected:
			return err // never got a stream: a wrong address or a dead server
		}
		fmt.Fprintf(a.stderr(), "watch %s: %v; resuming in %s\n", name, err, backoff)
		if lifecycle.Sleep(ctx, backoff) != nil {
			return nil
		}
		backoff = min(2*backoff, 15*time.Second)
	}
}

// printEvent prints one event. It reports done for the events that end
// the stream (compacted, not_found).
func (a *app) printEvent(ev sseEvent) (done bool, err error) {
	if ev.name == "error" {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(ev.data, &e)
		switch e.Error.Code {
		case "compacted", "not_found":
			return true, fmt.Errorf("watch ended: %s (%s)", e.Error.Message, e.Error.Code)
		}
		_, err := fmt.Fprintf(a.stderr(), "watch: %s (%s); still watching\n", e.Error.Message, e.Error.Code)
		return false, err
	}
	if a.json() {
		return false, json.NewEncoder(a.stdout()).Encode(map[string]any{"event": ev.name, "id": ev.id, "data": json.RawMessage(ev.data)})
	}
	switch ev.name {
	case "revision":
		var r revisionJSON
		if err := json.Unmarshal(ev.data, &r); err != nil {
			return true, fmt.Errorf("watch: bad revision event: %w", err)
		}
		_, err = fmt.Fprintf(a.stdout(), "revision %d  %s  %s  %s  %s\n", r.Revision, fmtTime(r.Time), r.Author, strings.Join(r.fileNames(), ","), r.Message)
	case "links":
		var l struct {
			Links []string `json:"links"`
		}
		_ = json.Unmarshal(ev.data, &l)
		_, err = fmt.Fprintf(a.stdout(), "links  %s\n", strings.Join(l.Links, ","))
	}
	return false, err
}

// stream opens an event stream at path (resuming after since when ≥ 0),
// calls opened once the server accepted it, and calls fn for each event until fn reports done, ctx ends, or the stream
// breaks (errStreamEnded or a transport error). The per-call timeout bounds
// only the wait for the response headers, not the stream.
func (c *client) stream(ctx context.Context, path string, since int64, opened func(), fn func(sseEvent) (bool, error)) error {
	u := c.base + path
	if since >= 0 {
		u += "?" + url.Values{"since": {strconv.FormatInt(since, 10)}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("User-Agent", "sluice-cli")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	hc := &http.Client{Transport: c.http.Transport} // no overall timeout: streams are long
	resp, err := hc.Do(req)
	if err != nil {
		return c.transportError(request{method: http.MethodGet, path: path}, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return parseAPIError(resp, body)
	}
	opened()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxResponse)
	var ev sseEvent
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name == "" && data.Len() == 0 {
				continue // a comment (": ping") block
			}
			ev.data = []byte(data.String())
			if ev.name == "" {
				ev.name = "message"
			}
			done, err := fn(ev)
			if err != nil || done {
				return err
			}
			ev, data = sseEvent{}, strings.Builder{}
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id:"):
			ev.id = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		case strings.HasPrefix(line, "event:"):
			ev.name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("%w: %v", errStreamEnded, err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errStreamEnded
}

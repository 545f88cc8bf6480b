package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc/api"
)

// explain words err for the command line: a server that cannot be reached
// names --server and SLUICE_SERVER, and a 401 says where the token came
// from (never what it is). Other errors, the *api.Error of an answer
// included, pass through; the result still matches what err matched but
// the unreachable server. Calling it twice is harmless.
func (a *app) explain(err error) error {
	var ce *api.ConnError
	if errors.As(err, &ce) {
		switch {
		case ce.Timeout():
			return fmt.Errorf("%s %s: no answer from %s in time: %w", ce.Method, ce.Path, ce.Server, ce.Err)
		case errors.Is(err, context.Canceled):
			return fmt.Errorf("%s %s: interrupted", ce.Method, ce.Path)
		}
		cause := ce.Err
		var ue *url.Error
		if errors.As(cause, &ue) {
			cause = ue.Err
		}
		return fmt.Errorf("cannot reach the sluice server at %s (is `sluice server` running? set --server or SLUICE_SERVER): %w", ce.Server, cause)
	}
	var ae *api.Error
	if errors.As(err, &ae) && ae.Status == 422 && len(ae.Violations()) > 1 && !strings.Contains(err.Error(), "\n  ") {
		var b strings.Builder
		for _, v := range ae.Violations() {
			b.WriteString("\n  " + v.String())
		}
		if n, ok := ae.Details["violations_omitted"].(float64); ok && n > 0 {
			fmt.Fprintf(&b, "\n  (and %d more)", int(n))
		}
		return fmt.Errorf("%w%s", err, b.String())
	}
	if errors.As(err, &ae) && ae.Status == 401 && ae.Hint == "" {
		ae.Hint = "token from " + a.tokenSource
		if !a.sentToken {
			ae.Hint = "no token sent: " + a.tokenSource + " is set"
		}
	}
	return err
}

// explainErrors makes c and its subcommands return their errors through
// explain.
func (a *app) explainErrors(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error { return a.explain(run(cmd, args)) }
	}
	for _, sub := range c.Commands() {
		a.explainErrors(sub)
	}
}

// isStatus reports whether err is an answer of the server with HTTP status
// code.
func isStatus(err error, code int) bool {
	var e *api.Error
	return errors.As(err, &e) && e.Status == code
}

package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/configsvc/access"
)

// Whoami returns the caller's token: id, name, roles.
func (c *Client) Whoami(ctx context.Context) (Whoami, error) {
	var w Whoami
	_, err := c.get(ctx, "/v1/whoami", nil, &w)
	return w, err
}

// Tokens lists the API tokens (admins only); never the tokens themselves.
func (c *Client) Tokens(ctx context.Context) ([]Token, error) {
	var out TokenList
	_, err := c.get(ctx, "/v1/tokens", nil, &out)
	return out.Tokens, err
}

// CreateToken creates an API token (admins only). The answer's Secret is
// the token, shown this once.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (Token, error) {
	var t Token
	_, err := c.doJSON(ctx, request{method: http.MethodPost, path: "/v1/tokens"}, req, &t)
	return t, err
}

// RevokeToken revokes the token with id (as Tokens lists it).
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/v1/tokens/" + url.PathEscape(id)})
	return err
}

// Audit queries the audit log (admins only), newest first, with the
// sampled refusals (Sampled, Count) merged in by time. Zero fields of q do
// not filter, but console sign-ins and sign-outs are left out unless
// q.Sessions is set or q.Action given; q.Limit 0 is the server's default
// of 100.
func (c *Client) Audit(ctx context.Context, q access.Query) ([]AuditEntry, error) {
	out, err := c.AuditPage(ctx, q, "")
	return out.Entries, err
}

// AuditPage is Audit returning the whole answer: a page of entries and
// the cursor of the next one ("" when the page is not full), which a
// following call passes as cursor with the same q (its Before and
// BeforeSampled then stay zero).
func (c *Client) AuditPage(ctx context.Context, q access.Query, cursor string) (AuditList, error) {
	v := url.Values{}
	if q.Service != "" {
		v.Set("service", q.Service)
	}
	if q.Actor != "" {
		v.Set("actor", q.Actor)
	}
	if q.Action != "" {
		v.Set("action", q.Action)
	}
	if q.Outcome != "" {
		v.Set("outcome", q.Outcome)
	}
	if q.Sessions {
		v.Set("sessions", "true")
	}
	if cursor != "" {
		v.Set("cursor", cursor)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Before > 0 {
		v.Set("before", strconv.FormatInt(q.Before, 10))
	}
	if q.BeforeSampled > 0 {
		v.Set("before_sampled", strconv.FormatInt(q.BeforeSampled, 10))
	}
	var out AuditList
	_, err := c.get(ctx, "/v1/audit", v, &out)
	return out, err
}

// Pins lists the pins the caller may see, newest first; never their
// tokens.
func (c *Client) Pins(ctx context.Context) ([]Pin, error) {
	var out PinList
	_, err := c.get(ctx, "/v1/pins", nil, &out)
	return out.Pins, err
}

// CreatePin creates a pin; the caller needs the pin right on every target.
// The answer's Secret is the pin token, shown this once.
func (c *Client) CreatePin(ctx context.Context, req PinRequest) (Pin, error) {
	var p Pin
	_, err := c.doJSON(ctx, request{method: http.MethodPost, path: "/v1/pins"}, req, &p)
	return p, err
}

// RevokePin revokes the pin with id and returns it; the proxy refuses it
// from then on.
func (c *Client) RevokePin(ctx context.Context, id string) (Pin, error) {
	var p Pin
	_, err := c.doJSON(ctx, request{method: http.MethodDelete, path: "/v1/pins/" + url.PathEscape(id)}, nil, &p)
	return p, err
}

// LiveRoutes returns the live route tables the proxies publish (read
// access to sluice-system needed).
func (c *Client) LiveRoutes(ctx context.Context) (LiveRoutes, error) {
	var out LiveRoutes
	_, err := c.get(ctx, "/v1/routes", nil, &out)
	return out, err
}

// Ready checks that the server in use answers and reaches its store
// (GET /readyz); no token needed.
func (c *Client) Ready(ctx context.Context) error {
	_, err := c.get(ctx, "/readyz", nil, nil)
	return err
}

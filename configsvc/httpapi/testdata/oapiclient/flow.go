// Command oapiclient runs Sluice's core flow through a client that
// oapi-codegen generated from the served /v1/openapi.json: the test
// TestOpenAPIGeneratedClient copies this module to a temp dir, generates
// client.gen.go beside this file (package main), and runs it against a real
// server named by SLUICE_URL with the admin token in SLUICE_TOKEN. It prints
// one line per step and exits 1 at the first step that fails.
//
// It is a separate module so that the generator and its runtime are pinned
// (go.mod, go.sum) without becoming dependencies of Sluice.
package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"
)

const svc = "oapi-orders"

var (
	dbV1     = []byte("# database\nport: 5432\npool: 10\n")
	dbV2     = []byte("port: 5432\npool: 50\n")
	features = []byte("{\"beta\": [\"a\", \"b\"],\n \"limit\": 3}\n")
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := run(ctx, os.Getenv("SLUICE_URL"), os.Getenv("SLUICE_TOKEN")); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		os.Exit(1)
	}
	fmt.Println("flow ok")
}

func bearer(token string) ClientOption {
	return WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	})
}

func ptr[T any](v T) *T { return &v }

// step checks one call of the generated client: no error, and the status
// wanted (r is a generated *…Response, with StatusCode and Body).
func step(name string, r interface{ StatusCode() int }, err error, want int) error {
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if got := r.StatusCode(); got != want {
		return fmt.Errorf("%s: status %d, want %d: %s", name, got, want, reflect.ValueOf(r).Elem().FieldByName("Body").Bytes())
	}
	fmt.Printf("%s: %d\n", name, want)
	return nil
}

func run(ctx context.Context, url, token string) error {
	c, err := NewClientWithResponses(url, bearer(token))
	if err != nil {
		return err
	}

	created, err := c.PutServicesSvcWithResponse(ctx, svc, nil)
	if err := step("create service", created, err, http.StatusCreated); err != nil {
		return err
	}

	// Publish a YAML file and a JSON file as raw bodies, with their media types.
	for _, f := range []struct {
		name, ctype string
		content     []byte
	}{{"db.yaml", "application/yaml", dbV1}, {"features.json", "application/json", features}} {
		put, err := c.PutServicesSvcFilesFileWithBodyWithResponse(ctx, svc, f.name,
			&PutServicesSvcFilesFileParams{XSluiceMessage: ptr("add " + f.name)}, f.ctype, bytes.NewReader(f.content))
		if err := step("publish "+f.name, put, err, http.StatusOK); err != nil {
			return err
		}
	}

	// Read them back: the generated client hands over the bytes as stored.
	for name, want := range map[string][]byte{"db.yaml": dbV1, "features.json": features} {
		get, err := c.GetServicesSvcFilesFileWithResponse(ctx, svc, name, nil)
		if err := step("read "+name, get, err, http.StatusOK); err != nil {
			return err
		}
		if !bytes.Equal(get.Body, want) || get.HTTPResponse.Header.Get("ETag") != `"2"` {
			return fmt.Errorf("read %s: %q with ETag %s, want %q with ETag \"2\"", name, get.Body, get.HTTPResponse.Header.Get("ETag"), want)
		}
	}
	nm, err := c.GetServicesSvcFilesFileWithResponse(ctx, svc, "db.yaml", &GetServicesSvcFilesFileParams{IfNoneMatch: ptr(`"2"`)})
	if err := step("read unchanged db.yaml (If-None-Match)", nm, err, http.StatusNotModified); err != nil {
		return err
	}

	// A multi-file publish, based on revision 2, sent twice under one
	// Idempotency-Key: the repeat gets the first answer and publishes
	// nothing.
	for i, want := range []string{"", "true"} {
		pub, err := c.PostServicesSvcRevisionsWithResponse(ctx, svc, &PostServicesSvcRevisionsParams{IfMatch: ptr(`"2"`), IdempotencyKey: ptr("oapi-flow-revision-3")}, PublishRequest{
			Message: ptr("bigger pool"), Changes: []Change{{File: "db.yaml", Content: ptr(string(dbV2))}},
		})
		if err := step(fmt.Sprintf("publish revision 3 (attempt %d)", i+1), pub, err, http.StatusCreated); err != nil {
			return err
		}
		if pub.JSON201 == nil || pub.JSON201.Revision != 3 || pub.HTTPResponse.Header.Get("Idempotent-Replayed") != want {
			return fmt.Errorf("publish attempt %d: answer %s (replayed %q), want revision 3 (replayed %q)", i+1, pub.Body, pub.HTTPResponse.Header.Get("Idempotent-Replayed"), want)
		}
	}

	// A weak ETag never matches in If-Match.
	weak, err := c.PutServicesSvcFilesFileWithBodyWithResponse(ctx, svc, "db.yaml", &PutServicesSvcFilesFileParams{IfMatch: ptr(`W/"3"`)},
		"application/yaml", bytes.NewReader(dbV1))
	if err := step("write with a weak If-Match", weak, err, http.StatusPreconditionFailed); err != nil {
		return err
	}
	if weak.JSON412 == nil || weak.JSON412.Error.Code != "precondition_failed" {
		return fmt.Errorf("weak If-Match: answer %s, want the precondition_failed error", weak.Body)
	}

	hist, err := c.GetServicesSvcRevisionsWithResponse(ctx, svc, nil)
	if err := step("history", hist, err, http.StatusOK); err != nil {
		return err
	}
	var nums []int64
	for _, r := range hist.JSON200.Revisions {
		nums = append(nums, r.Revision)
	}
	if !slices.Equal(nums, []int64{3, 2, 1}) || hist.JSON200.Revisions[0].Message != "bigger pool" {
		return fmt.Errorf("history: revisions %v, want 3 2 1, newest \"bigger pool\"", nums)
	}

	diff, err := c.GetServicesSvcDiffWithResponse(ctx, svc, &GetServicesSvcDiffParams{From: ptr(1), To: ptr(3)})
	if err := step("diff 1..3", diff, err, http.StatusOK); err != nil {
		return err
	}
	var status []string
	for _, f := range diff.JSON200.Files {
		status = append(status, f.File+" "+string(f.Status))
		if f.File == "db.yaml" && !strings.Contains(f.Diff, "+pool: 50") {
			return fmt.Errorf("diff of db.yaml %q lacks +pool: 50", f.Diff)
		}
	}
	if !slices.Equal(status, []string{"db.yaml modified", "features.json added"}) {
		return fmt.Errorf("diff files %v", status)
	}

	rb, err := c.PostServicesSvcRollbackWithResponse(ctx, svc, &PostServicesSvcRollbackParams{IfMatch: ptr(`"3"`)},
		RollbackRequest{ToRevision: 2, Message: ptr("pool 50 was too much")})
	if err := step("rollback to 2", rb, err, http.StatusCreated); err != nil {
		return err
	}
	back, err := c.GetServicesSvcFilesFileWithResponse(ctx, svc, "db.yaml", nil)
	if err != nil {
		return err
	}
	if !bytes.Equal(back.Body, dbV1) || back.HTTPResponse.Header.Get("ETag") != `"4"` {
		return fmt.Errorf("after the rollback db.yaml is %q (ETag %s), want revision 2's %q at revision 4", back.Body, back.HTTPResponse.Header.Get("ETag"), dbV1)
	}

	// Tokens: create a viewer, use it, revoke it.
	tok, err := c.PostTokensWithResponse(ctx, nil, TokenRequest{Name: "oapi-viewer", Roles: []Grant{{Role: GrantRoleViewer, Pattern: svc}}})
	if err := step("create token", tok, err, http.StatusCreated); err != nil {
		return err
	}
	viewer, err := NewClientWithResponses(url, bearer(*tok.JSON201.Token))
	if err != nil {
		return err
	}
	seen, err := viewer.GetServicesSvcWithResponse(ctx, svc, nil)
	if err := step("read as the new viewer", seen, err, http.StatusOK); err != nil {
		return err
	}
	denied, err := viewer.PutServicesSvcFilesFileWithBodyWithResponse(ctx, svc, "db.yaml", nil, "application/yaml", bytes.NewReader(dbV2))
	if err := step("publish as the viewer", denied, err, http.StatusForbidden); err != nil {
		return err
	}
	list, err := c.GetTokensWithResponse(ctx)
	if err := step("list tokens", list, err, http.StatusOK); err != nil {
		return err
	}
	if !slices.ContainsFunc(list.JSON200.Tokens, func(t Token) bool { return t.Id == tok.JSON201.Id && t.Token == nil }) {
		return fmt.Errorf("token list %s lacks %s (or shows a token)", list.Body, tok.JSON201.Id)
	}
	rev, err := c.DeleteTokensIdWithResponse(ctx, tok.JSON201.Id, nil)
	if err := step("revoke token", rev, err, http.StatusNoContent); err != nil {
		return err
	}
	gone, err := viewer.GetServicesSvcWithResponse(ctx, svc, nil)
	if err := step("read with the revoked token", gone, err, http.StatusUnauthorized); err != nil {
		return err
	}

	// Pins: register an instance, pin to it, list, revoke.
	inst, err := c.PutServicesSvcInstancesIdWithResponse(ctx, svc, "oapi-1", nil, Instance{Addr: ptr("127.0.0.1:9"), Revision: ptr(int64(4)), Status: ptr(Applied)})
	if err := step("register instance", inst, err, http.StatusCreated); err != nil {
		return err
	}
	pin, err := c.PostPinsWithResponse(ctx, nil, PinRequest{Targets: map[string]string{svc: "oapi-1"}, Ttl: ptr("10m"), Note: ptr("oapi flow")})
	if err := step("create pin", pin, err, http.StatusCreated); err != nil {
		return err
	}
	if pin.JSON201.Token == nil || !strings.HasPrefix(*pin.JSON201.Token, "slp_") || pin.JSON201.State != Active {
		return fmt.Errorf("pin answer %s: want an active pin with its slp_ token", pin.Body)
	}
	pins, err := c.GetPinsWithResponse(ctx)
	if err := step("list pins", pins, err, http.StatusOK); err != nil {
		return err
	}
	if !slices.ContainsFunc(pins.JSON200.Pins, func(p Pin) bool { return p.Id == pin.JSON201.Id }) {
		return fmt.Errorf("pin list %s lacks %s", pins.Body, pin.JSON201.Id)
	}
	unpin, err := c.DeletePinsIdWithResponse(ctx, pin.JSON201.Id, nil)
	if err := step("revoke pin", unpin, err, http.StatusOK); err != nil {
		return err
	}
	if unpin.JSON200.State != Revoked {
		return fmt.Errorf("revoked pin %s: want state revoked", unpin.Body)
	}

	// The audit log holds what the flow changed.
	audit, err := c.GetAuditWithResponse(ctx, &GetAuditParams{Limit: ptr(100)})
	if err := step("audit", audit, err, http.StatusOK); err != nil {
		return err
	}
	actions := map[string]int{}
	for _, e := range audit.JSON200.Entries {
		actions[e.Action+" "+string(e.Outcome)]++
	}
	for _, want := range []string{"publish allowed", "rollback allowed", "token.create allowed", "token.revoke allowed", "pin.create allowed", "pin.revoke allowed", "publish refused"} {
		if actions[want] == 0 {
			return fmt.Errorf("audit has no %q entry: %v", want, actions)
		}
	}
	return nil
}

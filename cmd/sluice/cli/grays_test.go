package cli

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/httpapi"
)

// realServer is an admin server on a bbolt store, with its admin token and
// an API client, for the commands whose output depends on what a real
// server answers (grays).
type realServer struct {
	url, token string
	c          *api.Client
	env        map[string]string
}

func newRealServer(t *testing.T) *realServer {
	t.Helper()
	st := bolttest.MustOpen(t, boltstore.Options{})
	srv, err := httpapi.New(httpapi.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { _ = srv.Close(); hs.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	token, _, err := access.NewTokens(st.Records(), nil).Bootstrap(ctx, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := api.New(api.Config{Servers: []string{hs.URL}, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &realServer{url: hs.URL, token: token, c: c, env: map[string]string{"SLUICE_SERVER": hs.URL, "SLUICE_TOKEN": token}}
}

// run runs a command line against the server.
func (s *realServer) run(t *testing.T, args ...string) result {
	t.Helper()
	return runCLI(t, nil, s.env, "", args...)
}

// must runs a command line and fails the test when it fails.
func (s *realServer) must(t *testing.T, args ...string) result {
	t.Helper()
	r := s.run(t, args...)
	if r.err != nil {
		t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), r.err, r.stderr)
	}
	return r
}

var grayIDRe = regexp.MustCompile(`g-[0-9a-f]{12}`)

func TestGrayCommands(t *testing.T) {
	s := newRealServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	orders := configsvc.Service("orders")
	if _, _, err := s.c.Create(ctx, orders); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Publish(ctx, orders, api.PublishRequest{Changes: []api.Change{api.PutChange("db.yaml", []byte("pool: 10\n")), api.PutChange("old.txt", []byte("x"))}}); err != nil {
		t.Fatal(err)
	}
	register := func(id, zone string, grays map[string]configsvc.GrayStatus) {
		t.Helper()
		if _, err := s.c.PutInstance(ctx, configsvc.Instance{Service: "orders", ID: id, Labels: map[string]string{"zone": zone}, Status: configsvc.StatusApplied, Revision: 1, Grays: grays}); err != nil {
			t.Fatal(err)
		}
	}
	register("orders-1", "a", nil)
	register("orders-2", "b", nil)
	dir := t.TempDir()
	local := filepath.Join(dir, "db.yaml")
	if err := os.WriteFile(local, []byte("pool: 50\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	// create: files by path (base name) or name=path, a selector.
	r := s.must(t, "gray", "create", "orders", local, "--labels", "zone=b", "--name", "bigger pool", "-m", "try a bigger pool")
	id := grayIDRe.FindString(r.stdout)
	if want := "created gray " + id + " of service/orders: db.yaml for zone=b\n"; id == "" || r.stdout != want {
		t.Fatalf("create printed %q, want %q", r.stdout, want)
	}
	g, err := s.c.Gray(ctx, orders, id)
	if err != nil || string(g.Changes[0].Content) != "pool: 50\n" || g.Name != "bigger pool" || g.Message != "try a bigger pool" {
		t.Fatalf("the created gray: %+v, %v", g, err)
	}
	// A second gray on the same file is refused, naming the first.
	if r := s.run(t, "gray", "create", "orders", "db.yaml="+local, "--percent", "5"); r.err == nil || !strings.Contains(r.all(), id) || !strings.Contains(r.all(), "409") {
		t.Fatalf("a second gray on db.yaml: %q", r.all())
	}

	// list: the service's grays; without a service, every active gray.
	for _, args := range [][]string{{"gray", "list", "orders"}, {"gray", "list"}} {
		r = s.must(t, args...)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "ID OF NAME FILES SELECTOR STATE ROLLOUT UPDATED AUTHOR" ||
			!strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), id+" service/orders bigger pool db.yaml zone=b active - ") {
			t.Fatalf("%v printed:\n%s", args, r.stdout)
		}
	}
	var list api.GrayList
	if err := json.Unmarshal([]byte(s.must(t, "gray", "list", "orders", "-o", "json").stdout), &list); err != nil || len(list.Grays) != 1 || list.Grays[0].ID != id {
		t.Fatalf("list -o json: %+v, %v", list, err)
	}

	// show: found without --service; the cohort with its statuses.
	r = s.must(t, "gray", "show", id)
	for _, want := range []string{"gray " + id + " of service/orders: bigger pool\n", "state:     active\n", "selector:  zone=b\n", "changes:   db.yaml\n",
		"cohort:    1 instances: 0 applied, 1 pending, 0 rejected\n", "\norders-2  orders   zone=b  pending"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("show lacks %q:\n%s", want, r.stdout)
		}
	}
	// promote is refused while the cohort rejected it: the instances are listed.
	register("orders-2", "b", map[string]configsvc.GrayStatus{id: {Status: configsvc.GrayRejected, Reason: "pool too big", Version: 1}})
	r = s.run(t, "gray", "promote", id, "--service", "orders")
	if r.err == nil || !strings.Contains(r.stderr, "orders-2  orders   rejected  pool too big") || !strings.Contains(r.err.Error(), "--force") {
		t.Fatalf("promote while rejected: err %v\nstderr %s", r.err, r.stderr)
	}

	// widen: raise the percent, add a label map.
	r = s.must(t, "gray", "widen", id, "--percent", "100", "--labels", "zone=c,canary=true")
	if want := "gray " + id + " now reaches 100% | zone=b | canary=true,zone=c (version 2)\n"; r.stdout != want {
		t.Fatalf("widen printed %q, want %q", r.stdout, want)
	}
	r = s.must(t, "gray", "widen", id, "--instances", "orders-1", "--replace")
	if want := "gray " + id + " now reaches ids orders-1 (version 3)\n"; r.stdout != want {
		t.Fatalf("widen --replace printed %q, want %q", r.stdout, want)
	}

	// rollout: the steps and gates; show follows it; a hand widen is refused.
	r = s.must(t, "gray", "rollout", id, "--steps", "5%:2m,25:5m,100%:2m", "--max-error-rate", "0.02", "--max-rejected", "1")
	if !strings.Contains(r.stdout, "rollout:   [5%:2m0s] 25%:5m0s 100%:2m0s, max 1 rejected, max error rate 0.02, apply timeout 1m0s\n") ||
		!strings.Contains(r.stdout, "step 1/3 5% applying since") {
		t.Fatalf("rollout printed:\n%s", r.stdout)
	}
	var view api.GrayView
	if err := json.Unmarshal([]byte(s.must(t, "gray", "show", id, "-o", "json").stdout), &view); err != nil || view.Rollout == nil ||
		view.Rollout.State.Percent != 5 || view.Selector.Percent != 5 || len(view.Rollout.Steps) != 3 {
		t.Fatalf("show -o json after the rollout start: %+v, %v", view, err)
	}
	if r := s.run(t, "gray", "widen", id, "--percent", "50"); r.err == nil || !strings.Contains(r.err.Error(), "a rollout drives the selector") {
		t.Fatalf("widen during a rollout: %v", r.err)
	}
	for _, bad := range [][]string{{"--steps", "5%:2m,abc"}, {"--steps", "5%:soon"}} {
		if r := s.run(t, append([]string{"gray", "rollout", id}, bad...)...); r.err == nil || !strings.Contains(r.err.Error(), "--steps") {
			t.Fatalf("rollout %v: %v", bad, r.err)
		}
	}

	// abandon; then a gray that deletes a file, promoted with --force.
	if r := s.must(t, "gray", "abandon", id); r.stdout != "abandoned gray "+id+" of service/orders\n" {
		t.Fatalf("abandon printed %q", r.stdout)
	}
	r = s.must(t, "gray", "create", "orders", "db.yaml="+local, "--delete", "old.txt", "--percent", "100")
	id2 := grayIDRe.FindString(r.stdout)
	if r := s.must(t, "gray", "promote", id2, "--force", "-m", "bigger pool everywhere"); r.stdout != "promoted gray "+id2+": service/orders revision 2\n" {
		t.Fatalf("promote --force printed %q", r.stdout)
	}
	if snap, err := s.c.Snapshot(ctx, orders, 0); err != nil || string(snap.Files["db.yaml"]) != "pool: 50\n" || snap.Files["old.txt"] != nil {
		t.Fatalf("main after the promote: %v, %v", snap.Files, err)
	}
	r = s.must(t, "gray", "show", id2)
	if !strings.Contains(r.stdout, "state:     promoted (r2) (promoted by ") || !strings.Contains(r.stdout, "changes:   -old.txt, db.yaml\n") {
		t.Fatalf("show of the promoted gray:\n%s", r.stdout)
	}

	// Shared groups: --shared names a group.
	if _, _, err := s.c.Create(ctx, configsvc.Group("common")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.PutFile(ctx, configsvc.Group("common"), "redis.yaml", []byte("port: 1\n")); err != nil {
		t.Fatal(err)
	}
	redis := filepath.Join(dir, "redis.yaml")
	if err := os.WriteFile(redis, []byte("port: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = s.must(t, "gray", "create", "common", redis, "--shared", "--percent", "5")
	gid := grayIDRe.FindString(r.stdout)
	if !strings.Contains(r.stdout, "of group/common: redis.yaml for 5%") {
		t.Fatalf("group gray create printed %q", r.stdout)
	}
	if r := s.must(t, "gray", "list", "common", "--shared"); !strings.Contains(r.stdout, gid+"  group/common") {
		t.Fatalf("list --shared:\n%s", r.stdout)
	}
	if r := s.must(t, "gray", "show", gid, "--shared", "common"); !strings.Contains(r.stdout, "cohort:    no live instance matches") {
		t.Fatalf("show of a group gray nobody links:\n%s", r.stdout)
	}

	// Input mistakes are named before anything is sent.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"gray", "create", "orders", local, "--labels", "zone"}, "--labels \"zone\""},
		{[]string{"gray", "create", "orders"}, "nothing in the gray"},
		{[]string{"gray", "show", "g-nothex"}, "gray id"},
		{[]string{"gray", "show", "g-000000000000"}, "not found in the"},
		{[]string{"gray", "show", id, "--service", "orders", "--shared", "common"}, "give one"},
	} {
		if r := s.run(t, tc.args...); r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error with %q", tc.args, r.err, tc.want)
		}
	}
}

func TestParseSteps(t *testing.T) {
	steps, err := parseSteps("5%:2m, 25:5m,100%:0s")
	if err != nil || len(steps) != 3 || steps[0].Percent != 5 || time.Duration(steps[0].Bake) != 2*time.Minute ||
		steps[1].Percent != 25 || steps[2].Percent != 100 || steps[2].Bake != 0 {
		t.Fatalf("parseSteps: %+v, %v", steps, err)
	}
	for _, bad := range []string{"", "5%", "x%:1m", "5%:1"} {
		if _, err := parseSteps(bad); err == nil {
			t.Errorf("parseSteps(%q) accepted", bad)
		}
	}
}

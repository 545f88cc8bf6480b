package main

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// TestVersion runs `sluice version` and `sluice --version`, as text and
// JSON: both print the module version, commit and Go version of the test
// binary's build info, the same way.
func TestVersion(t *testing.T) {
	want := readVersion(debug.ReadBuildInfo())
	if want.Go != runtime.Version() {
		t.Fatalf("build info Go version %q, runtime says %q", want.Go, runtime.Version())
	}
	outputs := map[string]string{}
	for _, args := range [][]string{{"version"}, {"--version"}, {"version", "-o", "json"}, {"--version", "-o", "json"}} {
		env, stdout, stderr := testEnv(nil)
		if code := run(context.Background(), args, env); code != 0 {
			t.Fatalf("sluice %s: exit %d: %s", strings.Join(args, " "), code, stderr.String())
		}
		outputs[strings.Join(args, " ")] = stdout.String()
	}
	if outputs["version"] != outputs["--version"] || outputs["version -o json"] != outputs["--version -o json"] {
		t.Errorf("version and --version differ: %q", outputs)
	}
	text := outputs["version"]
	for _, line := range []string{"sluice " + want.Version + "\n", "commit: " + want.Commit, "go: " + runtime.Version() + "\n"} {
		if !strings.Contains(text, line) {
			t.Errorf("sluice version printed %q, want a line %q", text, line)
		}
	}
	var got versionInfo
	if err := json.Unmarshal([]byte(outputs["version -o json"]), &got); err != nil || got != want {
		t.Errorf("sluice version -o json = %+v (%v), want %+v", got, err, want)
	}
	env, _, stderr := testEnv(nil)
	if code := run(context.Background(), []string{"version", "-o", "yaml"}, env); code == 0 || !strings.Contains(stderr.String(), "table or json") {
		t.Errorf("sluice version -o yaml: exit %d, stderr %q; want an error naming the formats", code, stderr.String())
	}
}

// TestReadVersion: what the build info tells, and "(devel)" and "unknown"
// for what it does not.
func TestReadVersion(t *testing.T) {
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want versionInfo
		text string
	}{
		{name: "no build info", want: versionInfo{Version: "(devel)", Commit: "unknown", Go: "unknown"},
			text: "sluice (devel)\ncommit: unknown\ngo: unknown\n"},
		{name: "source tree without VCS", ok: true,
			bi:   &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/sluicehq/sluice", Version: "(devel)"}},
			want: versionInfo{Version: "(devel)", Commit: "unknown", Go: "go1.26.8"},
			text: "sluice (devel)\ncommit: unknown\ngo: go1.26.8\n"},
		{name: "release with VCS", ok: true,
			bi: &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
				{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-11-27T00:00:00Z"}, {Key: "vcs.modified", Value: "true"}}},
			want: versionInfo{Version: "v1.4.0", Commit: "0123abcd", CommitTime: "2026-11-27T00:00:00Z", Modified: true, Go: "go1.26.8"},
			text: "sluice v1.4.0\ncommit: 0123abcd (2026-11-27T00:00:00Z) with uncommitted changes\ngo: go1.26.8\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := readVersion(tc.bi, tc.ok)
			if got != tc.want {
				t.Fatalf("readVersion = %+v, want %+v", got, tc.want)
			}
			var b bytes.Buffer
			if err := got.write(&b, "table"); err != nil || b.String() != tc.text {
				t.Fatalf("text = %q, %v; want %q", b.String(), err, tc.text)
			}
		})
	}
}

// TestCompletionUnknownShell: `sluice completion <shell>` for a shell cobra
// has no script for (or none) fails, naming the valid shells; a known one
// prints its script.
func TestCompletionUnknownShell(t *testing.T) {
	for _, args := range [][]string{{"completion", "tcsh"}, {"completion"}} {
		env, stdout, stderr := testEnv(nil)
		code := run(context.Background(), args, env)
		if code == 0 || !strings.Contains(stderr.String(), "bash, fish, powershell, zsh") {
			t.Errorf("sluice %s: exit %d, stderr %q, stdout %d bytes; want a failure naming bash, fish, powershell, zsh",
				strings.Join(args, " "), code, stderr.String(), len(stdout.String()))
		}
	}
	env, stdout, stderr := testEnv(nil)
	if code := run(context.Background(), []string{"completion", "bash"}, env); code != 0 || !strings.Contains(stdout.String(), "bash completion") {
		t.Errorf("sluice completion bash: exit %d, stderr %q", code, stderr.String())
	}
}

// TestCompletionFromServer runs cobra's completion requests (what the
// shell scripts run at each Tab) against a real server: service names,
// files of the chosen service, shared groups, instance ids for pin
// --target; nothing, quietly and quickly, without a token or a server.
func TestCompletionFromServer(t *testing.T) {
	dir := t.TempDir()
	rs := startServerMain(t, []string{"--addr", "127.0.0.1:0", "--data-dir", dir}, nil)
	token, c := rs.adminClient(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, svc := range []string{"orders", "ordinals", "billing"} {
		if _, _, err := c.Create(ctx, configsvc.Service(svc)); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"db.yaml", "features.json", "notes.txt"} {
		if _, err := c.PutFile(ctx, configsvc.Service("orders"), f, []byte("{}\n")); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := c.Create(ctx, configsvc.Group("redis-common")); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"orders-1", "orders-2"} {
		if _, err := c.PutInstance(ctx, configsvc.Instance{Service: "orders", ID: id, Addr: "127.0.0.1:9"}); err != nil {
			t.Fatal(err)
		}
	}

	complete := func(vars map[string]string, args ...string) (suggestions []string, directive, stderr string) {
		t.Helper()
		env, stdout, errOut := testEnv(vars)
		if code := run(ctx, append([]string{"__complete"}, args...), env); code != 0 {
			t.Fatalf("sluice __complete %q: exit %d: %s", args, code, errOut.String())
		}
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		return lines[:len(lines)-1], lines[len(lines)-1], errOut.String()
	}
	withToken := map[string]string{"SLUICE_SERVER": rs.url, "SLUICE_TOKEN": token, "SLUICE_DATA_DIR": t.TempDir()}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"services", []string{"get", ""}, []string{"billing", "orders", "ordinals"}},
		{"services by prefix", []string{"history", "ord"}, []string{"orders", "ordinals"}},
		{"files of the chosen service", []string{"get", "orders", ""}, []string{"db.yaml", "features.json", "notes.txt"}},
		{"files by prefix", []string{"edit", "orders", "f"}, []string{"features.json"}},
		{"flags after the verb", []string{"put", "--timeout", "5s", "orders", "d"}, []string{"db.yaml"}},
		{"rollback --file", []string{"rollback", "orders", "--file", ""}, []string{"db.yaml", "features.json", "notes.txt"}},
		{"groups", []string{"shared", "show", ""}, []string{"redis-common"}},
		{"link: service then group", []string{"link", "orders", ""}, []string{"redis-common"}},
		{"pin target services", []string{"pin", "create", "--target", "ord"}, []string{"orders=", "ordinals="}},
		{"pin target instances", []string{"pin", "create", "--target", "orders="}, []string{"orders=orders-1", "orders=orders-2"}},
		{"no third argument for get", []string{"get", "orders", "db.yaml", ""}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _, _ := complete(withToken, tc.args...)
			if !slices.Equal(got, tc.want) {
				t.Errorf("completing %q: %q, want %q", tc.args, got, tc.want)
			}
		})
	}

	// Without a token, or with the server gone, nothing is suggested and
	// nothing is said, within the completion timeout.
	noToken := map[string]string{"SLUICE_SERVER": rs.url, "SLUICE_DATA_DIR": t.TempDir()}
	unreachable := map[string]string{"SLUICE_SERVER": "http://127.0.0.1:1", "SLUICE_TOKEN": token, "SLUICE_DATA_DIR": t.TempDir()}
	for name, vars := range map[string]map[string]string{"no token": noToken, "server unreachable": unreachable} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			got, directive, stderr := complete(vars, "get", "")
			if len(got) != 0 || directive != ":4" || took(start) > 2*time.Second+time.Second {
				t.Errorf("got %q, directive %q after %s; want no suggestion and no file completion (:4) at once", got, directive, took(start))
			}
			if strings.Contains(stderr, "Error") || strings.Contains(stderr, "cannot reach") {
				t.Errorf("stderr %q: completion must not report errors", stderr)
			}
		})
	}
}

func took(start time.Time) time.Duration { return time.Since(start).Round(time.Millisecond) }

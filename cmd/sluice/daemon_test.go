package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/configsvc/testkit"
)

// TestHelpListsEnvTwins: --help of both commands lists every flag with its
// environment twin.
func TestHelpListsEnvTwins(t *testing.T) {
	tests := []struct {
		cmd  string
		want []string // flag → twin pairs that must appear on one line
	}{
		{"server", []string{"--addr", "SLUICE_ADDR", "--proxy-addr", "SLUICE_PROXY_ADDR", "--proxy-access-log", "SLUICE_PROXY_ACCESS_LOG", "--log-format", "SLUICE_LOG_FORMAT", "--trusted-proxies", "SLUICE_TRUSTED_PROXIES"}},
		{"proxy", []string{"--addr", "SLUICE_ADDR", "--access-log", "SLUICE_ACCESS_LOG", "--metrics-addr", "SLUICE_METRICS_ADDR", "--log-level", "SLUICE_LOG_LEVEL", "--store", "SLUICE_STORE"}},
	}
	for _, tc := range tests {
		t.Run(tc.cmd, func(t *testing.T) {
			env, stdout, stderr := testEnv(nil)
			if code := run(context.Background(), []string{tc.cmd, "--help"}, env); code != 0 {
				t.Fatalf("%s --help: exit %d: %s", tc.cmd, code, stderr)
			}
			_, flags, ok := strings.Cut(stdout.String(), "\nFlags:\n")
			if !ok {
				t.Fatalf("no Flags section in the help:\n%s", stdout)
			}
			lines := map[string]string{} // flag → its help line
			for _, line := range strings.Split(flags, "\n") {
				fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "-h, "))
				if len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
					lines[fields[0]] = line
				}
			}
			if len(lines) < 5 {
				t.Fatalf("no flags in the help:\n%s", stdout)
			}
			for flag, line := range lines {
				if flag != "--help" && !strings.Contains(line, "(env SLUICE_") {
					t.Errorf("%s has no env twin in --help: %q", flag, line)
				}
			}
			for i := 0; i < len(tc.want); i += 2 {
				if !strings.Contains(lines[tc.want[i]], "(env "+tc.want[i+1]+")") {
					t.Errorf("%s: help line %q does not name %s", tc.want[i], lines[tc.want[i]], tc.want[i+1])
				}
			}
		})
	}
}

// TestProxyOptionsInBothCommands: every proxy option is a flag of `sluice
// proxy` and, prefixed proxy-, of `sluice server`.
func TestProxyOptionsInBothCommands(t *testing.T) {
	var opts ProxyOptions
	fs := pflag.NewFlagSet("options", pflag.ContinueOnError)
	opts.register(fs, "")
	server, proxy := newServerCmd(Env{}).Flags(), newProxyCmd(Env{}).Flags()
	n := 0
	fs.VisitAll(func(f *pflag.Flag) {
		n++
		if proxy.Lookup(f.Name) == nil {
			t.Errorf("sluice proxy lacks --%s", f.Name)
		}
		if server.Lookup("proxy-"+f.Name) == nil {
			t.Errorf("sluice server lacks --proxy-%s", f.Name)
		}
	})
	if n < 4 {
		t.Fatalf("ProxyOptions registered %d flags, want at least addr, trusted-proxies, access-log, shutdown-timeout", n)
	}
}

// TestFlagBeatsEnv: each flag is read from its twin when not given, and the
// flag given on the command line wins.
func TestFlagBeatsEnv(t *testing.T) {
	type result struct{ env, flag string } // the value read back in each case
	tests := []struct {
		cmd, flag           string
		envValue, flagValue string
		want                result
		get                 func(s *ServerMain, p *ProxyMain) string
	}{
		{"server", "log-level", "debug", "error", result{"debug", "error"}, func(s *ServerMain, _ *ProxyMain) string { return levelFlag{&s.Log.Level}.String() }},
		{"server", "log-format", "json", "text", result{"json", "text"}, func(s *ServerMain, _ *ProxyMain) string { return s.Log.Format }},
		{"server", "proxy-addr", "127.0.0.1:1", "127.0.0.1:2", result{"127.0.0.1:1", "127.0.0.1:2"}, func(s *ServerMain, _ *ProxyMain) string { return s.Proxy.Addr }},
		{"server", "proxy-access-log", "off", "/tmp/access.log", result{"off", "/tmp/access.log"}, func(s *ServerMain, _ *ProxyMain) string { return s.Proxy.AccessLog }},
		{"server", "proxy-shutdown-timeout", "3s", "1m", result{"3s", "1m0s"}, func(s *ServerMain, _ *ProxyMain) string { return s.Proxy.ShutdownTimeout.String() }},
		{"server", "proxy-trusted-proxies", "10.0.0.1", "10.0.0.2,10.1.0.0/16", result{"10.0.0.1/32", "10.0.0.2/32,10.1.0.0/16"}, func(s *ServerMain, _ *ProxyMain) string {
			return prefixesFlag{&s.Proxy.TrustedProxies}.String()
		}},
		{"server", "proxy-upstream-deny", "10.0.0.0/8", "[::1]:7070,127.0.0.1:2181", result{"10.0.0.0/8", "[::1]:7070,127.0.0.1:2181"}, func(s *ServerMain, _ *ProxyMain) string {
			return upstreamRulesFlag{&s.Proxy.UpstreamDeny}.String()
		}},
		{"server", "proxy-read-timeout", "5s", "2m", result{"5s", "2m0s"}, func(s *ServerMain, _ *ProxyMain) string { return s.Proxy.ReadTimeout.String() }},
		{"server", "data-dir", "/env", "/flag", result{"bolt:///env/sluice.db", "bolt:///flag/sluice.db"}, func(s *ServerMain, _ *ProxyMain) string { return s.StoreURL }},
		{"proxy", "addr", "127.0.0.1:1", "127.0.0.1:2", result{"127.0.0.1:1", "127.0.0.1:2"}, func(_ *ServerMain, p *ProxyMain) string { return p.Proxy.Addr }},
		{"proxy", "access-log", "off", "-", result{"off", "-"}, func(_ *ServerMain, p *ProxyMain) string { return p.Proxy.AccessLog }},
		{"proxy", "shutdown-timeout", "3s", "2s", result{"3s", "2s"}, func(_ *ServerMain, p *ProxyMain) string { return p.Proxy.ShutdownTimeout.String() }},
		{"proxy", "trusted-proxies", "10.0.0.1", "::1", result{"10.0.0.1/32", "::1/128"}, func(_ *ServerMain, p *ProxyMain) string { return prefixesFlag{&p.Proxy.TrustedProxies}.String() }},
		{"proxy", "upstream-allow", "10.0.0.0/8", "169.254.169.254", result{"10.0.0.0/8", "169.254.169.254"}, func(_ *ServerMain, p *ProxyMain) string {
			return upstreamRulesFlag{&p.Proxy.UpstreamAllow}.String()
		}},
		{"proxy", "read-header-timeout", "3s", "1s", result{"3s", "1s"}, func(_ *ServerMain, p *ProxyMain) string { return p.Proxy.ReadHeaderTimeout.String() }},
		{"proxy", "idle-timeout", "3s", "1s", result{"3s", "1s"}, func(_ *ServerMain, p *ProxyMain) string { return p.Proxy.IdleTimeout.String() }},
		{"proxy", "metrics-addr", ":9090", "127.0.0.1:9091", result{":9090", "127.0.0.1:9091"}, func(_ *ServerMain, p *ProxyMain) string { return p.MetricsAddr }},
		{"proxy", "store", "zk://h1:2181/env", "bolt:///tmp/flag.db", result{"zk://h1:2181/env", "bolt:///tmp/flag.db"}, func(_ *ServerMain, p *ProxyMain) string { return p.StoreURL }},
		{"proxy", "log-level", "warn", "debug", result{"warn", "debug"}, func(_ *ServerMain, p *ProxyMain) string { return levelFlag{&p.Log.Level}.String() }},
	}
	parse := func(t *testing.T, cmd string, args []string, vars map[string]string) (*ServerMain, *ProxyMain) {
		t.Helper()
		env := Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(k string) string { return vars[k] }}
		var s *ServerMain
		var p *ProxyMain
		var err error
		if cmd == "server" {
			s = NewServerMain(env)
			err = s.ParseFlags(args)
		} else {
			p = NewProxyMain(env)
			err = p.ParseFlags(args)
		}
		if err != nil {
			t.Fatalf("ParseFlags(%q) with %v: %v", args, vars, err)
		}
		return s, p
	}
	for _, tc := range tests {
		t.Run(tc.cmd+"/"+tc.flag, func(t *testing.T) {
			vars := map[string]string{envTwin(tc.flag): tc.envValue}
			if got := tc.get(parse(t, tc.cmd, nil, vars)); got != tc.want.env {
				t.Errorf("%s=%s alone: got %q, want %q", envTwin(tc.flag), tc.envValue, got, tc.want.env)
			}
			if got := tc.get(parse(t, tc.cmd, []string{"--" + tc.flag, tc.flagValue}, vars)); got != tc.want.flag {
				t.Errorf("--%s %s with %s=%s: got %q, want the flag's %q", tc.flag, tc.flagValue, envTwin(tc.flag), tc.envValue, got, tc.want.flag)
			}
		})
	}
	t.Run("embedded proxy inherits the server's trusted proxies", func(t *testing.T) {
		s, _ := parse(t, "server", nil, map[string]string{"SLUICE_TRUSTED_PROXIES": "10.0.0.0/8"})
		if got := (prefixesFlag{&s.Proxy.TrustedProxies}).String(); got != "10.0.0.0/8" {
			t.Fatalf("proxy trusted proxies %q, want the server's 10.0.0.0/8", got)
		}
	})
}

// TestBadEnvValueNamesTheVariable: an environment twin with a value its
// flag refuses fails the command with the variable's name, through
// ParseFlags and through the cobra command alike.
func TestBadEnvValueNamesTheVariable(t *testing.T) {
	tests := []struct{ cmd, name, value string }{
		{"server", "SLUICE_LOG_LEVEL", "loud"},
		{"server", "SLUICE_LOG_FORMAT", "xml"},
		{"server", "SLUICE_ADDR", "7070"},
		{"server", "SLUICE_STORE", "mysql://x"},
		{"server", "SLUICE_TRUSTED_PROXIES", "10.0.0.0/8,nonsense"},
		{"server", "SLUICE_PROXY_ADDR", "nowhere"},
		{"server", "SLUICE_PROXY_SHUTDOWN_TIMEOUT", "soon"},
		{"proxy", "SLUICE_SHUTDOWN_TIMEOUT", "-1s"},
		{"proxy", "SLUICE_METRICS_ADDR", "9090"},
		{"proxy", "SLUICE_TRUSTED_PROXIES", "nonsense"},
		{"proxy", "SLUICE_LOG_FORMAT", "logfmt"},
	}
	for _, tc := range tests {
		t.Run(tc.cmd+"/"+tc.name, func(t *testing.T) {
			vars := map[string]string{tc.name: tc.value}
			env := Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(k string) string { return vars[k] }}
			var err error
			if tc.cmd == "server" {
				err = NewServerMain(env).ParseFlags(nil)
			} else {
				err = NewProxyMain(env).ParseFlags(nil)
			}
			if err == nil || !strings.Contains(err.Error(), tc.name) {
				t.Fatalf("ParseFlags with %s=%q: %v; want an error naming %s", tc.name, tc.value, err, tc.name)
			}
			e, _, stderr := testEnv(vars)
			if code := run(context.Background(), []string{tc.cmd}, e); code == 0 || !strings.Contains(stderr.String(), tc.name) {
				t.Fatalf("sluice %s with %s=%q: exit %d, stderr %q; want a failure naming %s", tc.cmd, tc.name, tc.value, code, stderr, tc.name)
			}
		})
	}
}

// TestLogFormatJSON: with --log-format json (flag or twin) every line both
// commands log is a JSON object, the embedded proxy's and its access log's
// included.
func TestLogFormatJSON(t *testing.T) {
	get := newTestClient(t).get
	checkJSON := func(t *testing.T, out string, wantMsgs ...string) {
		t.Helper()
		msgs := map[string]bool{}
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var line map[string]any
			if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
				t.Fatalf("log line is not JSON (%v): %q", err, sc.Text())
			}
			msg, _ := line["msg"].(string)
			msgs[msg] = true
			if c, _ := line["component"].(string); c != "" {
				msgs["component="+c] = true
			}
		}
		for _, m := range wantMsgs {
			if !msgs[m] {
				t.Errorf("no log line %q in:\n%s", m, out)
			}
		}
	}
	t.Run("server", func(t *testing.T) {
		rs := startServerMain(t, []string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-format", "json", "--proxy-addr", "127.0.0.1:0"}, nil)
		get(rs.url + "/healthz")
		get("http://" + rs.m.Bound("proxy-addr") + "/nothing-routed")
		rs.stop(t)
		checkJSON(t, rs.stderr.String(), "sluice server listening", "proxy listening", "sluice server shutting down", "component=proxy.access")
	})
	t.Run("proxy", func(t *testing.T) {
		e, stdout, stderr := testEnv(map[string]string{"SLUICE_LOG_FORMAT": "json", "SLUICE_ACCESS_LOG": "log"})
		m := NewProxyMain(e)
		r := startMain(t, m, []string{"--addr", "127.0.0.1:0", "--store", "bolt://" + filepath.Join(t.TempDir(), "s.db")}, stdout, stderr)
		get("http://" + m.Bound("addr") + "/nothing-routed")
		r.stop(t)
		checkJSON(t, stderr.String(), "proxy listening", "component=proxy.access")
	})
}

// TestServerEmbeddedProxyTakesProxyOptions: the --proxy-… flags reach the
// proxy embedded in the server (here its access log file).
func TestServerEmbeddedProxyTakesProxyOptions(t *testing.T) {
	access := filepath.Join(t.TempDir(), "access.log")
	rs := startServerMain(t, []string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--proxy-addr", "127.0.0.1:0"},
		map[string]string{"SLUICE_PROXY_ACCESS_LOG": access})
	if code := newTestClient(t).get("http://" + rs.m.Bound("proxy-addr") + "/nothing-routed"); code != http.StatusNotFound {
		t.Fatalf("through the embedded proxy with no routes: %d, want 404", code)
	}
	rs.stop(t)
	b, err := os.ReadFile(access)
	if err != nil || !strings.Contains(string(b), `"path":"/nothing-routed"`) {
		t.Fatalf("access log %s: %v %q; want the request", access, err, b)
	}
	if strings.Contains(rs.stderr.String(), "proxy.access") {
		t.Errorf("access lines went to the server's log too")
	}
}

// TestCloseLeavesNoGoroutines: after Run returned and Close, nothing either
// command started is left running.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	defer goleak.VerifyNone(t, append(testkit.LeakOptions(), goleak.IgnoreCurrent())...) // fasthttp's Date updater starts with the first fast-engine proxy, here when the test runs alone
	client := newTestClient(t)
	get := client.get

	rs := startServerMain(t, []string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--proxy-addr", "127.0.0.1:0", "--debug-addr", "127.0.0.1:0"}, nil)
	get(rs.url + "/readyz")
	get("http://" + rs.m.Bound("proxy-addr") + "/")
	get("http://" + rs.m.Bound("debug-addr") + "/debug/pprof/")
	rs.stop(t)

	e, stdout, stderr := testEnv(nil)
	m := NewProxyMain(e)
	r := startMain(t, m, []string{"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--debug-addr", "127.0.0.1:0",
		"--store", "bolt://" + filepath.Join(t.TempDir(), "s.db")}, stdout, stderr)
	get("http://" + m.Bound("addr") + "/")
	get("http://" + m.Bound("metrics-addr") + "/metrics")
	get("http://" + m.Bound("debug-addr") + "/debug/pprof/")
	r.stop(t)
	client.c.CloseIdleConnections() // before the deferred check, which runs before cleanups
}

// testClient is an HTTP client with connections of its own, closed at
// cleanup, so that a goroutine-leak check can account for them.
type testClient struct {
	t *testing.T
	c *http.Client
}

func newTestClient(t *testing.T) *testClient {
	c := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	return &testClient{t: t, c: c}
}

// get GETs url, reads the body and returns the status code.
func (tc *testClient) get(url string) int {
	tc.t.Helper()
	resp, err := tc.c.Get(url)
	if err != nil {
		tc.t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

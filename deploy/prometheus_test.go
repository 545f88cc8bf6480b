package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/testkit"
)

const promtoolHint = "install Debian's prometheus package (make prometheus)"

// Target labels the generated promtool input gives the scraped series, as
// a Prometheus with the two scrape jobs of deploy/prometheus/README.md does.
var (
	proxyTarget  = map[string]string{"job": "sluice-proxy", "instance": "proxy-1:9090"}
	serverTarget = map[string]string{"job": "sluice-server", "instance": "server-1:7070"}
)

func TestPromtoolCheckRules(t *testing.T) {
	promtool := requireTool(t, "promtool", promtoolHint)
	out, err := exec.Command(promtool, "check", "rules", repoPath(t, "deploy/prometheus/rules.yml")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// zkOnlySeries is exported only by servers and proxies on a ZooKeeper store,
// which the in-process stack here does not run; cmd/sluice's
// TestServerOnZooKeeper checks that a real server on ZooKeeper exports it
// with the server label the rule uses.
const zkOnlySeries = "sluice_zookeeper_known_data_loss"

// TestPromtoolCommittedRuleTests runs the committed unit tests of the rules
// (deploy/prometheus/*_test.yml) and checks that their input series are
// series the admin server and proxy really export: each one, less its
// target labels (job, instance), is a series scraped from the stack.
func TestPromtoolCommittedRuleTests(t *testing.T) {
	promtool := requireTool(t, "promtool", promtoolHint)
	files, err := filepath.Glob(repoPath(t, "deploy/prometheus/*_test.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no deploy/prometheus/*_test.yml: %v", err)
	}
	out, err := exec.Command(promtool, append([]string{"test", "rules"}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}

	s := startStack(t)
	s.storeDown.Store(true)
	scraped := map[string]bool{}
	for range 2 {
		s.round(t)
		for _, u := range []string{s.proxyMetrics, s.admin + "/metrics"} {
			for k := range s.scrape(t, u) {
				scraped[k] = true
			}
		}
	}
	for _, f := range files {
		var doc struct {
			Tests []struct {
				InputSeries []struct {
					Series string `json:"series"`
				} `json:"input_series"`
			} `json:"tests"`
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := unmarshalYAML(b, &doc, false); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		n := 0
		for _, tc := range doc.Tests {
			for _, in := range tc.InputSeries {
				name, labels, err := parseSeries(in.Series)
				if err != nil {
					t.Errorf("%s: %v", filepath.Base(f), err)
					continue
				}
				if name == "up" { // Prometheus' own, per target
					continue
				}
				if name == zkOnlySeries { // see zkOnlySeries
					n++
					continue
				}
				if labels["job"] == "" || labels["instance"] == "" {
					t.Errorf("%s: %s lacks the target labels job and instance", filepath.Base(f), in.Series)
				}
				delete(labels, "job")
				delete(labels, "instance")
				if key := seriesKey(name, labels); !scraped[key] {
					t.Errorf("%s: input series %s is not a series the server or proxy exports", filepath.Base(f), key)
				}
				n++
			}
		}
		if n == 0 {
			t.Errorf("%s: no input series checked", filepath.Base(f))
		}
	}
}

// TestRulesFireOnScrapedMetrics drives a real admin server and proxy for 12
// rounds, scraping both after each, and feeds the scrapes to `promtool test
// rules` as one sample a minute: the alerts the scenario causes must fire
// (an open breaker, the proxy's own 503s, a failing route, the server's
// 503s and store errors) and no other.
func TestRulesFireOnScrapedMetrics(t *testing.T) {
	promtool := requireTool(t, "promtool", promtoolHint)
	s := startStack(t)
	s.storeDown.Store(true)
	const rounds = 12
	var samples []map[string]float64 // series (with target labels) → value, one map per minute
	take := func() {
		m := map[string]float64{}
		for _, src := range []struct {
			url    string
			target map[string]string
		}{{s.proxyMetrics, proxyTarget}, {s.admin + "/metrics", serverTarget}} {
			for key, v := range s.scrape(t, src.url) {
				m[withLabels(t, key, src.target)] = v
			}
		}
		samples = append(samples, m)
	}
	take() // minute 0: before any traffic
	for range rounds {
		s.round(t)
		take()
	}

	seriesNames := map[string]bool{}
	for _, m := range samples {
		for k := range m {
			seriesNames[k] = true
		}
	}
	keys := make([]string, 0, len(seriesNames))
	for k := range seriesNames {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	type inputSeries struct {
		Series string `json:"series"`
		Values string `json:"values"`
	}
	var input []inputSeries
	for _, k := range keys {
		vals := make([]string, len(samples))
		for i, m := range samples {
			if v, ok := m[k]; ok {
				vals[i] = strconv.FormatFloat(v, 'g', -1, 64)
			} else {
				vals[i] = "_"
			}
		}
		input = append(input, inputSeries{Series: k, Values: strings.Join(vals, " ")})
	}

	alert := func(name, severity string, target map[string]string, extra ...string) map[string]any {
		labels := map[string]string{"alertname": name, "alertstate": "firing", "severity": severity}
		for k, v := range target {
			labels[k] = v
		}
		for i := 0; i+1 < len(extra); i += 2 {
			labels[extra[i]] = extra[i+1]
		}
		return map[string]any{"labels": seriesKey("ALERTS", labels), "value": 1}
	}
	evalTime := fmt.Sprintf("%dm", rounds)
	test := map[string]any{
		"rule_files":          []string{repoPath(t, "deploy/prometheus/rules.yml")},
		"evaluation_interval": "1m",
		"group_eval_order":    []string{"sluice-recording", "sluice-alerts"},
		"tests": []any{map[string]any{
			"name":         "scraped from a server and a proxy driven by TestRulesFireOnScrapedMetrics",
			"interval":     "1m",
			"input_series": input,
			"promql_expr_test": []any{
				map[string]any{
					"expr":      `ALERTS{alertstate="firing"}`,
					"eval_time": evalTime,
					"exp_samples": []any{
						alert("SluiceProxyBreakerOpen", "warning", proxyTarget, "route", "orders", "upstream_instance", "orders-2"),
						alert("SluiceProxyBreakerOpen", "warning", proxyTarget, "route", "payments", "upstream_instance", "payments-1"),
						alert("SluiceProxyOwnErrors", "warning", proxyTarget, "route", "payments", "upstream_instance", "proxy", "code", "5xx"),
						alert("SluiceProxyRouteErrors", "warning", proxyTarget, "route", "payments"),
						alert("SluiceProxyRateLimitKeysFull", "info", proxyTarget, "route", "limited"),
						alert("SluiceServerErrors", "warning", serverTarget),
						alert("SluiceStoreErrors", "warning", serverTarget),
					},
				},
				map[string]any{
					// orders failed only in the first minute: no longer in the 5 m window.
					"expr":      `instance_route:sluice_proxy_requests_5xx:ratio_rate5m`,
					"eval_time": evalTime,
					"exp_samples": []any{
						map[string]any{"labels": seriesKey("instance_route:sluice_proxy_requests_5xx:ratio_rate5m", proxyTarget, "route", "orders"), "value": 0},
						map[string]any{"labels": seriesKey("instance_route:sluice_proxy_requests_5xx:ratio_rate5m", proxyTarget, "route", "limited"), "value": 0},
						map[string]any{"labels": seriesKey("instance_route:sluice_proxy_requests_5xx:ratio_rate5m", proxyTarget, "route", "payments"), "value": 1},
					},
				},
				map[string]any{
					// Every round, 3 of the admin server's 11 requests (10 and
					// the scrape) are readiness probes failing with 503.
					"expr":      `round(instance:sluice_http_requests_5xx:ratio_rate5m * 11)`,
					"eval_time": evalTime,
					"exp_samples": []any{
						map[string]any{"labels": seriesKey("", serverTarget), "value": 3},
					},
				},
			},
		}},
	}
	b, err := json.MarshalIndent(test, "", "  ") // JSON is YAML
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "scraped_test.yml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "test", "rules", path).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules on the scraped series: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules: no SUCCESS:\n%s", out)
	}
}

// TestPrometheusScrapeKeepsUpstreamInstance starts Debian's Prometheus on
// loopback, scraping the stack every second with deploy/prometheus/rules.yml
// loaded, and asks its HTTP API: the breaker and own-error alert
// expressions (read back from Prometheus' rule list) return series with
// upstream_instance beside the target's instance, the alerts are pending
// with those labels, and no series carries exported_instance (which a label
// named instance would have become).
func TestPrometheusScrapeKeepsUpstreamInstance(t *testing.T) {
	bin := requireTool(t, "prometheus", promtoolHint)
	s := startStack(t)
	deadline := time.Now().Add(90 * time.Second)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	traffic := make(chan struct{})
	go func() { // one round every 200 ms until the test ends (at most 90 s)
		defer close(traffic)
		for ctx.Err() == nil {
			s.round(t)
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-traffic
	})

	dir := t.TempDir()
	proxyHost := strings.TrimSuffix(strings.TrimPrefix(s.proxyMetrics, "http://"), "/metrics")
	serverHost := strings.TrimPrefix(s.admin, "http://")
	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 900ms}
rule_files: [%q]
scrape_configs:
  - job_name: sluice-proxy
    static_configs: [{targets: [%q]}]
  - job_name: sluice-server
    static_configs: [{targets: [%q]}]
`, repoPath(t, "deploy/prometheus/rules.yml"), proxyHost, serverHost)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testkit.FreeAddr(t)
	api := "http://" + addr
	logPath := filepath.Join(dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("prometheus log:\n%s", b)
		}
	})

	// The rules as Prometheus loaded them.
	var rules struct {
		Groups []struct {
			Rules []struct {
				Name  string `json:"name"`
				Query string `json:"query"`
				Type  string `json:"type"`
			} `json:"rules"`
		} `json:"groups"`
	}
	testkit.Eventually(t, time.Until(deadline), "Prometheus serves its rules", func() error { return promGet(ctx, api, "/api/v1/rules", nil, &rules) })
	exprs := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Type == "alerting" {
				exprs[r.Name] = r.Query
			}
		}
	}
	for _, name := range []string{"SluiceProxyBreakerOpen", "SluiceProxyOwnErrors"} {
		if exprs[name] == "" {
			t.Fatalf("Prometheus did not load alert %s from rules.yml (has %v)", name, exprs)
		}
	}

	type series struct {
		Metric map[string]string `json:"metric"`
	}
	query := func(expr string) ([]series, error) {
		var res struct {
			Result []series `json:"result"`
		}
		err := promGet(ctx, api, "/api/v1/query", url.Values{"query": {expr}}, &res)
		return res.Result, err
	}
	// want waits until expr returns n series, each with the labels given
	// (a value "*" asks only for presence), and returns them.
	want := func(expr string, labels map[string]string, n int) []series {
		t.Helper()
		var got []series
		testkit.Eventually(t, time.Until(deadline), expr, func() error {
			var err error
			if got, err = query(expr); err != nil {
				return err
			}
			if len(got) != n {
				return fmt.Errorf("%d series, want %d: %v", len(got), n, got)
			}
			for _, s := range got {
				for k, v := range labels {
					if have, ok := s.Metric[k]; !ok || v != "*" && have != v {
						return fmt.Errorf("series %v: %s=%q, want %q", s.Metric, k, have, v)
					}
				}
			}
			return nil
		})
		return got
	}
	// The expressions of the documented alerts: the breakers of orders-2
	// and payments-1, and payments' own 503s, each with the scrape target
	// as instance and the upstream as upstream_instance.
	breakers := want(exprs["SluiceProxyBreakerOpen"], map[string]string{"job": "sluice-proxy", "instance": proxyHost, "upstream_instance": "*"}, 2)
	var open []string
	for _, s := range breakers {
		open = append(open, s.Metric["route"]+"/"+s.Metric["upstream_instance"])
	}
	sort.Strings(open)
	if strings.Join(open, " ") != "orders/orders-2 payments/payments-1" {
		t.Errorf("open breakers %v, want orders/orders-2 and payments/payments-1", open)
	}
	want(exprs["SluiceProxyOwnErrors"], map[string]string{"instance": proxyHost, "upstream_instance": "proxy", "route": "payments", "code": "5xx"}, 1)
	want(`sluice_proxy_requests_total{upstream_instance="proxy",code="5xx",route="payments"}`, map[string]string{"instance": proxyHost}, 1)

	got, err := query(`{__name__=~"sluice_.+",exported_instance!=""}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("series with exported_instance: %v", got)
	}

	// The alerts are pending (their for: is longer than the test) and carry
	// the labels.
	testkit.Eventually(t, time.Until(deadline), "SluiceProxyBreakerOpen pending for orders-2", func() error {
		var res struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		}
		if err := promGet(ctx, api, "/api/v1/alerts", nil, &res); err != nil {
			return err
		}
		for _, a := range res.Alerts {
			if a.Labels["alertname"] == "SluiceProxyBreakerOpen" && a.Labels["upstream_instance"] == "orders-2" && a.Labels["instance"] == proxyHost {
				return nil
			}
		}
		return fmt.Errorf("alerts: %+v", res.Alerts)
	})
}

// promGet calls Prometheus' HTTP API and decodes the data of a success.
func promGet(ctx context.Context, api, path string, q url.Values, data any) error {
	u := api + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("GET %s: status %d: %s", path, resp.StatusCode, b)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", path, env.Status, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

// withLabels adds labels to a series key made by seriesKey.
func withLabels(t *testing.T, key string, add map[string]string) string {
	t.Helper()
	name, labels, err := parseSeries(key)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range add {
		labels[k] = v
	}
	return seriesKey(name, labels)
}

var (
	seriesRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(.*)\})?$`)
	labelRE  = regexp.MustCompile(`\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)`)
)

// parseSeries parses `name{k="v",…}` as promtool input series are written.
func parseSeries(s string) (string, map[string]string, error) {
	m := seriesRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return "", nil, fmt.Errorf("series %q does not parse", s)
	}
	labels := map[string]string{}
	rest := m[2]
	for strings.TrimSpace(rest) != "" {
		l := labelRE.FindStringSubmatchIndex(rest)
		if l == nil || l[0] != 0 {
			return "", nil, fmt.Errorf("series %q: labels do not parse at %q", s, rest)
		}
		v, err := strconv.Unquote(`"` + rest[l[4]:l[5]] + `"`)
		if err != nil {
			return "", nil, fmt.Errorf("series %q: %w", s, err)
		}
		labels[rest[l[2]:l[3]]] = v
		rest = rest[l[1]:]
	}
	return m[1], labels, nil
}

// TestOperationsDocListsTheRules keeps the alert table of docs/operations.md
// ("What to monitor") and deploy/prometheus/rules.yml in step: the same
// alerts, each with the same expression and for.
func TestOperationsDocListsTheRules(t *testing.T) {
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
				Expr  string `json:"expr"`
				For   string `json:"for"`
			} `json:"rules"`
		} `json:"groups"`
	}
	// Only alert, expr and for matter here: record, labels and annotations are ignored.
	if err := unmarshalYAML(readRepoFile(t, "deploy/prometheus/rules.yml"), &file, false); err != nil {
		t.Fatal(err)
	}
	inFile := map[string]string{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				inFile[r.Alert] = strings.Join(strings.Fields(r.Expr), " ") + " | " + r.For
			}
		}
	}
	row := regexp.MustCompile("^\\| `(Sluice\\w+)` \\| `(.+?)` \\|\\s*(\\w*)\\s*\\|")
	inDoc := map[string]string{}
	for _, line := range strings.Split(string(readRepoFile(t, "docs/operations.md")), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			inDoc[m[1]] = strings.Join(strings.Fields(strings.ReplaceAll(m[2], `\|`, "|")), " ") + " | " + m[3]
		}
	}
	if len(inFile) == 0 {
		t.Fatal("rules.yml has no alerts")
	}
	for name, want := range inFile {
		if got, ok := inDoc[name]; !ok {
			t.Errorf("docs/operations.md does not list alert %s", name)
		} else if got != want {
			t.Errorf("docs/operations.md: %s is %q, rules.yml has %q", name, got, want)
		}
	}
	for name := range inDoc {
		if _, ok := inFile[name]; !ok {
			t.Errorf("docs/operations.md lists alert %s, which rules.yml lacks", name)
		}
	}
}

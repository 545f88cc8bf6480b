package format_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/format"
)

// allocated returns the bytes f allocates (runtime.MemStats.TotalAlloc; no
// test of this package runs in parallel).
func allocated(f func()) int64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc - before.TotalAlloc)
}

// budgetFactor is what a document may allocate per byte, validated or
// decoded, beside budgetBase; see docs/security.md "Parser budgets". The
// YAML parser builds a node of some 150 bytes per token, so its densest
// documents (a token every two bytes) cost more per byte than the others;
// the TOML decoder spends about a kilobyte per key, more the deeper the
// key (MaxTOMLDepth).
var budgetFactor = map[configsvc.Format]int64{
	configsvc.FormatJSON:       64,
	configsvc.FormatYAML:       320,
	configsvc.FormatTOML:       320,
	configsvc.FormatProperties: 64,
	configsvc.FormatEnv:        64,
	configsvc.FormatText:       64,
}

// budgetBase is the fixed part of every budget (small documents).
const budgetBase = 8 << 20

// wantWithinBudget runs Validate and Decode (into an untyped value) on
// content and fails unless each allocates at most its format's budget and
// returns nil or a *configsvc.ParseError. It returns Validate's error.
func wantWithinBudget(t *testing.T, file string, content []byte) error {
	t.Helper()
	f := configsvc.FormatOf(file)
	limit := budgetFactor[f]*int64(len(content)) + budgetBase
	var verr, derr error
	for op, run := range map[string]func(){
		"Validate": func() { verr = format.Validate(file, content) },
		"Decode":   func() { derr = format.Decode(file, content, decodeTarget(f)) },
	} {
		got := allocated(run)
		t.Logf("%s(%s, %d bytes) allocated %d bytes (%.0f× its size)", op, file, len(content), got, float64(got)/float64(len(content)))
		if got > limit {
			t.Errorf("%s(%s, %d bytes) allocated %d bytes (%.0f× its size), over the budget of %d", op, file, len(content), got, float64(got)/float64(len(content)), limit)
		}
	}
	for _, err := range []error{verr, derr} {
		var pe *configsvc.ParseError
		if err != nil && !errors.As(err, &pe) {
			t.Errorf("%s: error %v (%T), want nil or a *configsvc.ParseError", file, err, err)
		}
	}
	return verr
}

func decodeTarget(f configsvc.Format) any {
	switch f {
	case configsvc.FormatProperties, configsvc.FormatEnv:
		return new(map[string]string)
	case configsvc.FormatText:
		return new(string)
	case configsvc.FormatTOML:
		return new(map[string]any)
	}
	return new(any)
}

// wantRefused fails unless err is a *configsvc.ParseError whose message
// names the limit.
func wantRefused(t *testing.T, err error, limit string) {
	t.Helper()
	var pe *configsvc.ParseError
	if !errors.As(err, &pe) || !errors.Is(err, configsvc.ErrInvalid) || !strings.Contains(pe.Msg, limit) {
		t.Fatalf("error = %v, want a *configsvc.ParseError naming the limit %q", err, limit)
	}
}

// repeatTo repeats unit up to n bytes.
func repeatTo(unit string, n int) string { return strings.Repeat(unit, n/len(unit)) }

// lines writes format(i) for i = 0, 1, … while the result stays within n bytes.
func lines(n int, f func(i int) string) string {
	var b strings.Builder
	for i := 0; ; i++ {
		l := f(i)
		if b.Len()+len(l) > n {
			return b.String()
		}
		b.WriteString(l)
	}
}

// nestedProperties is the expansion bomb: each key holds ten references
// to the one before it.
func nestedProperties(levels int) string {
	var b strings.Builder
	b.WriteString("k0=xxxxxxxxxx\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "k%d=%s\n", i, strings.Repeat(fmt.Sprintf("${k%d}", i-1), 10))
	}
	return b.String()
}

func TestAttackPropertiesNestedExpansion(t *testing.T) {
	content := nestedProperties(6) // 338 bytes; expanded, k6 is 10 MB
	wantWithinBudget(t, "app.properties", []byte(content))
	var m map[string]string
	if err := format.Decode("app.properties", []byte(content), &m); err != nil {
		t.Fatal(err)
	}
	if want := strings.Repeat("${k5}", 10); m["k6"] != want {
		t.Fatalf("k6 = %.40q…, want the literal %q", m["k6"], want)
	}
	var s struct {
		K6 string `properties:"k6"`
	}
	if err := format.Decode("app.properties", []byte(content), &s); err != nil || s.K6 != m["k6"] {
		t.Fatalf("struct decode: k6 = %.40q…, %v; want the literal value", s.K6, err)
	}
}

func TestAttackPropertiesEnvironmentExpansion(t *testing.T) {
	t.Setenv("SLUICE_TEST_DB_PASSWORD", "hunter2")
	content := []byte("url=https://x/?k=${SLUICE_TEST_DB_PASSWORD}\nmissing=${SLUICE_TEST_UNSET}\n")
	if err := format.Validate("app.properties", content); err != nil {
		t.Fatal(err)
	}
	var s struct {
		URL     string `properties:"url"`
		Missing string `properties:"missing"`
	}
	if err := format.Decode("app.properties", content, &s); err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := format.Decode("app.properties", content, &m); err != nil {
		t.Fatal(err)
	}
	const want = "https://x/?k=${SLUICE_TEST_DB_PASSWORD}"
	if s.URL != want || m["url"] != want || s.Missing != "${SLUICE_TEST_UNSET}" {
		t.Fatalf("decoded url %q (struct), %q (map), missing %q; want the literal values, never the environment", s.URL, m["url"], s.Missing)
	}
}

// mergeBomb nests merge keys: each level merges the one before ten times.
func mergeBomb(levels int) string {
	return yamlBomb("a0: &a0 {x0: 1, x1: 2, x2: 3, x3: 4, x4: 5, x5: 6, x6: 7, x7: 8, x8: 9, x9: 0}\n", "a%d: &a%d {<<: [%s]}\n", levels)
}

// aliasBomb nests aliases ("billion laughs"): each level lists the one
// before ten times.
func aliasBomb(levels int) string {
	return yamlBomb("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n", "a%d: &a%d [%s]\n", levels)
}

// yamlBomb writes first, then one line per level formatted from its
// number (twice) and ten aliases of the level before.
func yamlBomb(first, level string, levels int) string {
	var b strings.Builder
	b.WriteString(first)
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, level, i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", "))
	}
	return b.String()
}

func TestAttackYAMLMergeKeyBomb(t *testing.T) {
	content := []byte(mergeBomb(5)) // 404 bytes
	wantRefused(t, wantWithinBudget(t, "a.yaml", content), "over the limit of 16384")
	var v map[string]any
	wantRefused(t, format.Decode("a.yaml", content, &v), "over the limit of 16384")
}

func TestAttackYAMLAliasBomb(t *testing.T) {
	content := []byte(aliasBomb(8)) // 10^9 scalars when expanded
	wantRefused(t, wantWithinBudget(t, "a.yaml", content), "aliases and merge keys expand")
	type doc struct {
		A8 [][][][][][][][][]string `yaml:"a8"`
	}
	var d doc
	wantRefused(t, format.Decode("a.yaml", content, &d), "aliases and merge keys expand")
}

// TestAttackYAMLWideMapping: one block mapping of many keys. goccy/go-yaml
// parsed it in time and memory quadratic in the keys (a 512 KiB file took
// 12 GB); yaml.v3 compares every pair of keys when it decodes.
func TestAttackYAMLWideMapping(t *testing.T) {
	content := []byte(lines(64<<10, func(i int) string { return fmt.Sprintf("k%d: 1\n", i) }))
	if err := wantWithinBudget(t, "a.yaml", content); err != nil {
		t.Fatalf("a mapping of %d keys: %v, want it accepted", strings.Count(string(content), "\n"), err)
	}
	content = []byte(lines(configsvc.MaxFileSize, func(i int) string { return fmt.Sprintf("k%d: 1\n", i) }))
	wantRefused(t, wantWithinBudget(t, "a.yaml", content), "mappings too wide")
}

func TestAttackYAMLAliasedWideMapping(t *testing.T) {
	// A mapping of 4000 keys, 8·10⁶ pairs, within the expansion budget
	// aliased four times: the decoder compares its pairs once per alias.
	var b strings.Builder
	b.WriteString("m: &m {")
	for i := range 4000 {
		fmt.Fprintf(&b, "k%d: 1, ", i)
	}
	b.WriteString("}\nl: [" + strings.TrimSuffix(strings.Repeat("*m, ", 4), ", ") + "]\n")
	wantRefused(t, wantWithinBudget(t, "a.yaml", []byte(b.String())), "pairs of keys")
}

func TestAttackTOMLDeepKeys(t *testing.T) {
	for name, content := range map[string]string{
		"dotted-key":    repeatTo("a.", 4<<10) + "a = 1\n",
		"table-header":  "[" + repeatTo("a.", 4<<10) + "a]\n",
		"inline-tables": "a = " + strings.Repeat("{b=", 1<<10) + "1" + strings.Repeat("}", 1<<10) + "\n",
		"arrays":        "a = " + strings.Repeat("[", 64<<10) + strings.Repeat("]", 64<<10) + "\n",
		"deep-table":    "[" + strings.TrimSuffix(strings.Repeat("a.", 10), ".") + "]\n" + repeatTo("b.", 20) + "c = 1\n",
	} {
		t.Run(name, func(t *testing.T) {
			wantRefused(t, wantWithinBudget(t, "a.toml", []byte(content)), fmt.Sprintf("over the limit of %d", format.MaxTOMLDepth))
		})
	}
}

func TestTOMLDepthWithinLimit(t *testing.T) {
	for name, content := range map[string]string{
		"at the limit":                     "[" + strings.TrimSuffix(strings.Repeat("a.", format.MaxTOMLDepth-2), ".") + "]\nb.c = 1\n",
		"strings and comments do not nest": "a = \"x.y.z.[{\" # .{[.\nb = '''\n" + repeatTo("[{.", 300) + "\n'''\n\"c.d.e\" = \"\"\"\n{{{\n\"\"\"\n",
		"inline":                           "a = {b = {c = [1, {d = 2}]}, e.f = 3}\n",
		"floats":                           "a = [" + strings.TrimSuffix(strings.Repeat("1.5, ", 500), ", ") + "]\nb = 1979-05-27T07:32:00.999Z\n",
	} {
		t.Run(name, func(t *testing.T) {
			if err := format.Validate("a.toml", []byte(content)); err != nil {
				t.Fatalf("Validate = %v, want nil", err)
			}
		})
	}
}

// TestParserBudgets feeds every format the documents of at most the file
// limit that cost its parser the most per byte, and checks each stays
// within its budget (or is refused naming the limit).
func TestParserBudgets(t *testing.T) {
	const n = configsvc.MaxFileSize
	seq := func(i int) string { return fmt.Sprintf("- &a%d 1\n- *a%d\n", i, i) }
	cases := map[string]string{
		"dense.json":       "[" + repeatTo("1,", n-3) + "1]",
		"objects.json":     "[" + repeatTo("{},", n-4) + "{}]",
		"deep.json":        strings.Repeat("[", n/2) + strings.Repeat("]", n/2),
		"flow.yaml":        "[" + repeatTo("1,", n-3) + "1]",
		"flowkeys.yaml":    "{" + repeatTo("a,", n-3) + "a}",
		"nullkeys.yaml":    repeatTo("? \n", n),
		"deep.yaml":        strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
		"block.yaml":       repeatTo("- 1\n", n),
		"anchors.yaml":     lines(n, seq),
		"aliases.yaml":     "- &a [1, 2, 3, 4, 5, 6, 7, 8]\n" + repeatTo("- *a\n", n-40),
		"merges.yaml":      "a: &a {x: 1, y: 2, z: 3}\nl:\n" + repeatTo("  - {<<: *a}\n", n-40),
		"alias-bomb.yaml":  aliasBomb(9),
		"merge-bomb.yaml":  mergeBomb(9),
		"ints.toml":        "a = [" + repeatTo("1,", n-10) + "1]",
		"inline.toml":      "a = [" + repeatTo("{},", n-10) + "{}]",
		"tables.toml":      lines(n, func(i int) string { return fmt.Sprintf("[t%d]\n", i) }),
		"arraytables.toml": repeatTo("[[a]]\n", n),
		"depth.toml":       lines(n, func(i int) string { return fmt.Sprintf("%sk%d=1\n", strings.Repeat("a.", format.MaxTOMLDepth-1), i) }),
		"deeptable.toml":   "[" + strings.TrimSuffix(strings.Repeat("a.", format.MaxTOMLDepth-1), ".") + "]\n" + lines(n-40, func(i int) string { return fmt.Sprintf("k%d=1\n", i) }),
		"keys.properties":  lines(n, func(i int) string { return fmt.Sprintf("k%d=1\n", i) }),
		"empty.properties": repeatTo("a\n", n),
		"refs.properties":  nestedProperties(8) + repeatTo("x=${k8}${k8}\n", n-1000),
		"keys.env":         lines(n, func(i int) string { return fmt.Sprintf("K%d=1\n", i) }),
		"empty.env":        repeatTo("#\n", n),
		"lines.txt":        repeatTo("\n", n),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			if len(content) > n {
				t.Fatalf("crafted %d bytes, over the file limit", len(content))
			}
			if err := wantWithinBudget(t, name, []byte(content)); err != nil {
				t.Logf("refused: %v", err)
			}
		})
	}
}

// cancelAfter is a context whose Err reports cancellation from its n-th
// call on, so a test can see validation look at it between steps.
type cancelAfter struct {
	context.Context
	calls, n int
}

func (c *cancelAfter) Err() error {
	if c.calls++; c.calls >= c.n {
		return context.Canceled
	}
	return nil
}

func TestValidateContextStops(t *testing.T) {
	big := []byte(lines(configsvc.MaxFileSize, func(i int) string { return fmt.Sprintf("- {a: %d}\n", i) }))
	done, cancel := context.WithCancel(context.Background())
	cancel()
	for _, f := range []string{"a.yaml", "a.json", "a.toml", "a.properties", "a.env", "a.txt"} {
		if err := format.ValidateContext(done, f, big); !errors.Is(err, context.Canceled) {
			t.Errorf("ValidateContext(%s) with a done context = %v, want context.Canceled", f, err)
		}
	}
	// Past parsing, the YAML budget walk looks at the context every
	// thousand nodes or so.
	for _, after := range []int{3, 10, 50} {
		ctx := &cancelAfter{Context: context.Background(), n: after}
		if err := format.ValidateContext(ctx, "a.yaml", big); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled at the %dth look: %v, want context.Canceled", after, err)
		}
	}
}

// countValue counts the nodes of a decoded value, shared parts once per
// reference.
func countValue(v any, limit int) int {
	n := 1
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			if n += 1 + countValue(e, limit-n); n > limit {
				return n
			}
		}
	case []any:
		for _, e := range x {
			if n += countValue(e, limit-n); n > limit {
				return n
			}
		}
	default:
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Map {
			n += 2 * rv.Len()
		}
	}
	return n
}

// FuzzYAMLBudget checks the alias and merge-key budget against what the
// decoder really builds: whatever ParseYAML accepts decodes into a value
// of at most the nodes written plus the expansion budget. The seed corpus
// holds anchors, aliases, merges and their bombs.
func FuzzYAMLBudget(f *testing.F) {
	for _, s := range []string{
		"a: &a {x: 1}\nb: {<<: *a, y: 2}\n", "a: &a [1, 2]\nb: [*a, *a, *a]\n", "&a [*a]", "a: &a {b: *a}\n",
		"a: &a {x: 1}\nb: &b {<<: [*a, *a]}\nc: {<<: [*b, *b]}\n", "- &x 1\n- *x\n- &x [2]\n- *x\n",
		"a: &a {<<: {k: v}}\nb: {<<: *a}\n", "? &k [1]\n: *k\n", mergeBomb(3), aliasBomb(4), "{a: 1, a: 2}", "<<: 1",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		docs, err := format.ParseYAML(context.Background(), "f.yaml", content)
		if err != nil {
			var pe *configsvc.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("ParseYAML = %v (%T), want a *configsvc.ParseError", err, err)
			}
			return
		}
		limit := 3*len(content) + 16 + max(format.MinYAMLExpansion, len(content))
		for _, d := range docs {
			var v any
			if d.Decode(&v) != nil {
				continue
			}
			if got := countValue(v, limit); got > limit {
				t.Fatalf("accepted %q decodes into more than %d nodes", content, limit)
			}
		}
	})
}

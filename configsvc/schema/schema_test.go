package schema_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/schema"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

var zkRoots atomic.Int64

// eachStore runs fn against a bbolt store and a ZooKeeper store (the
// harness skips the latter when no ZooKeeper is installed, unless
// SLUICE_REQUIRE_ZOOKEEPER=1), each wrapped as the server wraps it: formats,
// then schemas.
func eachStore(t *testing.T, fn func(t *testing.T, st *configsvc.ValidatingStore)) {
	validator := configsvc.Validators(format.Validator{}, schema.NewValidator())
	t.Run("bolt", func(t *testing.T) {
		fn(t, configsvc.Validating(bolttest.MustOpen(t, boltstore.Options{}), validator))
	})
	t.Run("zookeeper", func(t *testing.T) {
		zk := zktest.Start(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		st, err := zkstore.Open(ctx, zkstore.Config{Servers: zk.Servers(), Root: fmt.Sprintf("/schema-test/%d", zkRoots.Add(1)),
			SessionTimeout: 4 * time.Second, OpTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fn(t, configsvc.Validating(st, validator))
	})
}

func put(file, content string) configsvc.Change {
	return configsvc.Change{File: file, Content: []byte(content)}
}

func del(file string) configsvc.Change { return configsvc.Change{File: file, Delete: true} }

// publish publishes changes on top of the head.
func publish(ctx context.Context, st *configsvc.ValidatingStore, ref configsvc.Ref, changes ...configsvc.Change) (configsvc.Revision, error) {
	h, err := st.Head(ctx, ref)
	if err != nil {
		return configsvc.Revision{}, err
	}
	return st.Publish(ctx, ref, configsvc.Changeset{Base: h.Revision, Author: "t", Changes: changes})
}

// schemaErr returns the *configsvc.SchemaError of err or fails.
func schemaErr(t *testing.T, err error) *configsvc.SchemaError {
	t.Helper()
	var se *configsvc.SchemaError
	var ce *configsvc.ContentError
	if !errors.As(err, &se) || !errors.As(err, &ce) || !errors.Is(err, configsvc.ErrInvalid) {
		t.Fatalf("error %v (%T) is not a *configsvc.SchemaError inside a *configsvc.ContentError", err, err)
	}
	return se
}

const portSchema = `{
  "type": "object",
  "required": ["host", "port"],
  "properties": {
    "host": {"type": "string", "minLength": 1},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    "debug": {"type": "boolean"}
  },
  "additionalProperties": false
}`

func TestPublishValidatesAgainstSchema(t *testing.T) {
	eachStore(t, func(t *testing.T, st *configsvc.ValidatingStore) {
		ctx := context.Background()
		ref := configsvc.Service("orders")
		if err := st.Create(ctx, ref); err != nil {
			t.Fatal(err)
		}
		// The schema and a valid file in one changeset.
		if _, err := publish(ctx, st, ref, put("db.yaml.schema.json", portSchema), put("db.yaml", "host: db\nport: 5432\n")); err != nil {
			t.Fatalf("valid publish refused: %v", err)
		}
		t.Run("AllViolationsWithPositions", func(t *testing.T) {
			_, err := publish(ctx, st, ref, put("db.yaml", "host: \"\"\nport: 99999\nextra: 1\n"))
			se := schemaErr(t, err)
			got := map[string]configsvc.Violation{}
			for _, v := range se.Violations {
				got[v.Pointer+" "+v.Keyword] = v
			}
			for _, want := range []configsvc.Violation{
				{File: "db.yaml", Pointer: "/host", Line: 1, Column: 1, Keyword: "minLength"},
				{File: "db.yaml", Pointer: "/port", Line: 2, Column: 1, Keyword: "maximum"},
				{File: "db.yaml", Pointer: "", Line: 1, Column: 1, Keyword: "additionalProperties"},
			} {
				v, ok := got[want.Pointer+" "+want.Keyword]
				if !ok {
					t.Errorf("no %s violation at %q in %v", want.Keyword, want.Pointer, se.Violations)
					continue
				}
				if v.File != want.File || v.Line != want.Line || v.Column != want.Column || v.Schema != "db.yaml.schema.json" || v.Message == "" {
					t.Errorf("violation %+v, want file %s line %d column %d", v, want.File, want.Line, want.Column)
				}
			}
			if h, _ := st.Head(ctx, ref); h.Revision != 1 {
				t.Fatalf("a refused publish moved the head to %d", h.Revision)
			}
		})
		t.Run("SchemaChangeValidatesGovernedFiles", func(t *testing.T) {
			strict := strings.Replace(portSchema, `"maximum": 65535`, `"maximum": 1024`, 1)
			_, err := publish(ctx, st, ref, put("db.yaml.schema.json", strict))
			se := schemaErr(t, err)
			if len(se.Violations) != 1 || se.Violations[0].File != "db.yaml" || se.Violations[0].Keyword != "maximum" || se.Violations[0].Line != 2 {
				t.Fatalf("violations %+v, want db.yaml's port over the new maximum", se.Violations)
			}
		})
		t.Run("InvalidSchemaRefused", func(t *testing.T) {
			_, err := publish(ctx, st, ref, put("db.yaml.schema.json", `{"type": "objekt"}`))
			se := schemaErr(t, err)
			if v := se.Violations[0]; v.File != "db.yaml.schema.json" || v.Keyword != "$schema" || !strings.Contains(v.Message, "not a valid JSON Schema") {
				t.Fatalf("violation %+v, want the schema file refused as a schema", v)
			}
		})
		t.Run("RemoteRefNeverFetched", func(t *testing.T) {
			_, err := publish(ctx, st, ref, put("x.json.schema.json", `{"$ref": "https://example.com/evil.json"}`))
			se := schemaErr(t, err)
			if v := se.Violations[0]; v.Keyword != "$ref" || !strings.Contains(v.Message, "never fetched") {
				t.Fatalf("violation %+v, want the remote $ref refused", v)
			}
			_, err = publish(ctx, st, ref, put("y.json.schema.json", `{"$ref": "file:///etc/passwd"}`))
			if v := schemaErr(t, err).Violations[0]; v.Keyword != "$ref" {
				t.Fatalf("violation %+v, want the file: $ref refused", v)
			}
		})
		t.Run("RefInsideTheTree", func(t *testing.T) {
			common := `{"$defs": {"port": {"type": "integer", "maximum": 65535}}}`
			feat := `{"type": "object", "properties": {"port": {"$ref": "common.schema.json#/$defs/port"}}}`
			if _, err := publish(ctx, st, ref, put("common.schema.json", common), put("app.json.schema.json", feat), put("app.json", `{"port": 80}`)); err != nil {
				t.Fatalf("publish with a $ref inside the tree: %v", err)
			}
			_, err := publish(ctx, st, ref, put("app.json", "{\n  \"port\": 70000\n}"))
			if v := schemaErr(t, err).Violations[0]; v.Pointer != "/port" || v.Line != 2 || v.Column != 3 || v.Keyword != "maximum" {
				t.Fatalf("violation %+v", v)
			}
			// Changing the referenced schema revalidates what it governs.
			_, err = publish(ctx, st, ref, put("common.schema.json", `{"$defs": {"port": {"type": "integer", "maximum": 10}}}`))
			if v := schemaErr(t, err).Violations[0]; v.File != "app.json" {
				t.Fatalf("violation %+v, want app.json under the changed $def", v)
			}
			_, err = publish(ctx, st, ref, del("common.schema.json"))
			if v := schemaErr(t, err).Violations[0]; v.File != "app.json.schema.json" || v.Keyword != "$ref" {
				t.Fatalf("violation %+v, want the dangling $ref reported", v)
			}
		})
		t.Run("RollbackRestoresTheSchema", func(t *testing.T) {
			h, _ := st.Head(ctx, ref)
			// Loosen the schema and publish a value only the loose one allows.
			loose := strings.Replace(portSchema, `"maximum": 65535`, `"maximum": 100000`, 1)
			if _, err := publish(ctx, st, ref, put("db.yaml.schema.json", loose), put("db.yaml", "host: db\nport: 99999\n")); err != nil {
				t.Fatal(err)
			}
			// Rolling the whole service back restores both together.
			if _, err := configsvc.Rollback(ctx, st, ref, configsvc.RollbackRequest{To: h.Revision, Author: "t"}); err != nil {
				t.Fatalf("whole rollback: %v", err)
			}
			// Rolling back only the schema would leave db.yaml invalid.
			if _, err := publish(ctx, st, ref, put("db.yaml.schema.json", loose), put("db.yaml", "host: db\nport: 99999\n")); err != nil {
				t.Fatal(err)
			}
			_, err := configsvc.Rollback(ctx, st, ref, configsvc.RollbackRequest{To: h.Revision, Files: []string{"db.yaml.schema.json"}, Author: "t"})
			schemaErr(t, err)
		})
		t.Run("SharedGroup", func(t *testing.T) {
			g := configsvc.Group("redis-common")
			if err := st.Create(ctx, g); err != nil {
				t.Fatal(err)
			}
			if _, err := publish(ctx, st, g, put("redis.toml.schema.json", `{"type":"object","properties":{"redis":{"type":"object","properties":{"pool":{"type":"integer","minimum":1}}}}}`)); err != nil {
				t.Fatal(err)
			}
			_, err := publish(ctx, st, g, put("redis.toml", "[redis]\naddr = \"r:6379\"\npool = 0\n"))
			if v := schemaErr(t, err).Violations[0]; v.Pointer != "/redis/pool" || v.Line != 3 || v.Keyword != "minimum" {
				t.Fatalf("violation %+v", v)
			}
		})
	})
}

// TestFormatsOnTheirDataModel checks a value against a schema in every
// format: what the schema sees is the file's JSON data model.
func TestFormatsOnTheirDataModel(t *testing.T) {
	c := schema.NewChecker(0)
	ctx := context.Background()
	intPort := `{"type":"object","properties":{"port":{"type":"integer","maximum":100}},"required":["port"]}`
	strPort := `{"type":"object","properties":{"port":{"type":"string","pattern":"^[0-9]+$"}},"required":["port"]}`
	for _, tc := range []struct {
		file, schema, good, bad string
		line, col               int
	}{
		{"a.json", intPort, `{"port": 80}`, "{\n \"port\": 800}", 2, 2},
		{"a.yaml", intPort, "port: 80\n", "x: 1\nport: 800\n", 2, 1},
		{"a.yml", intPort, "port: 80\n", "base: &b\n  port: 800\n<<: *b\n", 2, 3},
		{"a.toml", intPort, "port = 80\n", "# c\nport = 800\n", 2, 0},
		{"a.properties", strPort, "port=80\n", "a=1\nport=eighty\n", 2, 0},
		{"a.env", strPort, "port=80\n", "A=1\nexport port=eighty\n", 2, 0},
		{"a.txt", `{"type":"string","maxLength":3}`, "abc", "abcd", 0, 0},
	} {
		t.Run(tc.file, func(t *testing.T) {
			good := memTree{tc.file: tc.good, schema.For(tc.file): tc.schema}
			if vs, err := c.Check(ctx, good, []string{tc.file}); err != nil || len(vs) != 0 {
				t.Fatalf("valid %s: %v %v", tc.file, vs, err)
			}
			bad := memTree{tc.file: tc.bad, schema.For(tc.file): tc.schema}
			vs, err := c.Check(ctx, bad, []string{tc.file})
			if err != nil || len(vs) != 1 {
				t.Fatalf("invalid %s: %v %v", tc.file, vs, err)
			}
			if vs[0].Line != tc.line || vs[0].Column != tc.col {
				t.Fatalf("violation %+v, want line %d column %d", vs[0], tc.line, tc.col)
			}
		})
	}
	t.Run("TOMLDatesAreStrings", func(t *testing.T) {
		tree := memTree{"d.toml": "at = 2026-01-02T03:04:05Z\nday = 2026-01-02\n", "d.toml.schema.json": `{"properties":{"at":{"type":"string","format":"date-time"},"day":{"type":"string"}}}`}
		if vs, err := c.Check(ctx, tree, []string{"d.toml"}); err != nil || len(vs) != 0 {
			t.Fatalf("%v %v", vs, err)
		}
	})
	t.Run("UnparseableFileIsAViolation", func(t *testing.T) {
		tree := memTree{"b.json": "{", "b.json.schema.json": intPort}
		vs, err := c.Check(ctx, tree, []string{"b.json"})
		if err != nil || len(vs) != 1 || vs[0].Keyword != "format" {
			t.Fatalf("%v %v", vs, err)
		}
	})
}

func TestCapAndOmitted(t *testing.T) {
	vs := make([]configsvc.Violation, configsvc.MaxViolations+7)
	err := schema.Refusal(vs)
	var se *configsvc.SchemaError
	if !errors.As(err, &se) || len(se.Violations) != configsvc.MaxViolations || se.Omitted != 7 {
		t.Fatalf("Refusal of %d violations = %v", len(vs), err)
	}
	if schema.Refusal(nil) != nil {
		t.Fatal("no violations refused")
	}
}

func TestFSTree(t *testing.T) {
	fsys := fstest.MapFS{
		"db.yaml":             {Data: []byte("port: 0\n")},
		"db.yaml.schema.json": {Data: []byte(`{"properties":{"port":{"minimum":1}}}`)},
		"sub/x.json":          {Data: []byte(`{}`)},
		".hidden":             {Data: []byte(`x`)},
	}
	tree, err := schema.NewFSTree(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(tree.Files(), ","); got != "db.yaml,db.yaml.schema.json" {
		t.Fatalf("Files() = %s", got)
	}
	vs, err := schema.NewChecker(0).Check(context.Background(), tree, tree.Files())
	if err != nil || len(vs) != 1 || vs[0].Pointer != "/port" {
		t.Fatalf("%v %v", vs, err)
	}
}

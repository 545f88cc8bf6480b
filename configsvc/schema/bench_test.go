package schema_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/schema"
)

// benchYAML is a 1 KiB YAML file of 34 keys, a typical config file, and
// benchSchema a schema for it that checks every key's type and pattern.
var (
	benchYAML = func() []byte {
		var sb strings.Builder
		for i := range 34 {
			fmt.Fprintf(&sb, "key%02d: value-0123456789abcdef\n", i)
		}
		return []byte(sb.String())
	}()
	benchSchema = func() []byte {
		var props []string
		for i := range 34 {
			props = append(props, fmt.Sprintf(`"key%02d": {"type": "string", "pattern": "^value-[0-9a-f]+$"}`, i))
		}
		return []byte(`{"type": "object", "additionalProperties": false, "properties": {` + strings.Join(props, ", ") + `}}`)
	}()
)

// benchPublish measures one publish of a 1 KiB YAML file through the
// validation `sluice server` wires (formats, then JSON Schemas) on a bbolt
// store (fsynced), with or without a schema beside the file. The pair is
// the publish latency with a schema next to without one, in the same run
// (docs/benchmarks.md).
func benchPublish(b *testing.B, withSchema bool) {
	st := configsvc.Validating(bolttest.MustOpen(b, boltstore.Options{}), configsvc.Validators(format.Validator{}, schema.NewValidator()))
	ctx := context.Background()
	ref := configsvc.Service("bench")
	if err := st.Create(ctx, ref); err != nil {
		b.Fatal(err)
	}
	changes := []configsvc.Change{{File: "app.yaml", Content: benchYAML}}
	if withSchema {
		changes = append(changes, configsvc.Change{File: "app.yaml.schema.json", Content: benchSchema})
	}
	if _, err := st.Publish(ctx, ref, configsvc.Changeset{Base: 0, Changes: changes}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := int64(1); n <= int64(b.N); n++ {
		content := append([]byte(fmt.Sprintf("# %d\n", n)), benchYAML...)
		cs := configsvc.Changeset{Base: n, Changes: []configsvc.Change{{File: "app.yaml", Content: content}}}
		if _, err := st.Publish(ctx, ref, cs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPublishWithoutSchema(b *testing.B) { benchPublish(b, false) }

func BenchmarkPublishWithSchema(b *testing.B) { benchPublish(b, true) }

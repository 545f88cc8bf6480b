package configsvc_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
)

func TestKindAndRef(t *testing.T) {
	for _, tc := range []struct {
		ref     configsvc.Ref
		str     string
		wantErr bool
	}{
		{configsvc.Service("orders"), "service/orders", false},
		{configsvc.Group("redis-common"), "group/redis-common", false},
		{configsvc.Ref{Kind: 9, Name: "x"}, "kind(9)/x", true},
		{configsvc.Ref{Name: "x"}, "kind(0)/x", true},
		{configsvc.Service("Bad"), "service/Bad", true},
		{configsvc.Group(""), "group/", true},
	} {
		t.Run(tc.str, func(t *testing.T) {
			if got := tc.ref.String(); got != tc.str {
				t.Fatalf("String() = %q, want %q", got, tc.str)
			}
			err := tc.ref.Validate()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, configsvc.ErrInvalid) {
				t.Fatalf("Validate() = %v, not ErrInvalid", err)
			}
		})
	}
}

func TestChangesetValidate(t *testing.T) {
	change := func(file, content string) configsvc.Change {
		return configsvc.Change{File: file, Content: []byte(content)}
	}
	big := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	many := make([]configsvc.Change, configsvc.MaxFilesPerChangeset+1)
	for i := range many {
		many[i] = change(fmt.Sprintf("f%d.txt", i), "x")
	}
	for _, tc := range []struct {
		name   string
		cs     configsvc.Changeset
		target error  // nil: valid
		field  string // for a *FieldError
		limit  int64  // for a *LimitError
	}{
		{name: "ok", cs: configsvc.Changeset{Changes: []configsvc.Change{change("a.json", "{}"), {File: "b.txt", Delete: true}}}},
		{name: "empty", cs: configsvc.Changeset{}, target: configsvc.ErrInvalid, field: "changes"},
		{name: "too-many-files", cs: configsvc.Changeset{Changes: many}, target: configsvc.ErrTooLarge, limit: configsvc.MaxFilesPerChangeset},
		{name: "message-too-long", cs: configsvc.Changeset{Message: string(big(configsvc.MaxMessageLen + 1)), Changes: []configsvc.Change{change("a.txt", "")}}, target: configsvc.ErrTooLarge, limit: configsvc.MaxMessageLen},
		{name: "message-at-limit", cs: configsvc.Changeset{Message: string(big(configsvc.MaxMessageLen)), Changes: []configsvc.Change{change("a.txt", "")}}},
		{name: "negative-base", cs: configsvc.Changeset{Base: -1, Changes: []configsvc.Change{change("a.txt", "")}}, target: configsvc.ErrInvalid, field: "base_revision"},
		{name: "bad-file-name", cs: configsvc.Changeset{Changes: []configsvc.Change{change("ok.txt", ""), change("a/b", "")}}, target: configsvc.ErrInvalid, field: "changes[1].file"},
		{name: "file-twice", cs: configsvc.Changeset{Changes: []configsvc.Change{change("a.txt", "1"), {File: "a.txt", Delete: true}}}, target: configsvc.ErrInvalid, field: "changes[1].file"},
		{name: "delete-with-content", cs: configsvc.Changeset{Changes: []configsvc.Change{{File: "a.txt", Delete: true, Content: []byte("x")}}}, target: configsvc.ErrInvalid, field: "changes[0]"},
		{name: "file-at-limit", cs: configsvc.Changeset{Changes: []configsvc.Change{{File: "a.txt", Content: big(configsvc.MaxFileSize)}}}},
		{name: "file-over-limit", cs: configsvc.Changeset{Changes: []configsvc.Change{{File: "a.txt", Content: big(configsvc.MaxFileSize + 1)}}}, target: configsvc.ErrTooLarge, limit: configsvc.MaxFileSize},
		{name: "changeset-at-limit", cs: configsvc.Changeset{Changes: []configsvc.Change{{File: "a.txt", Content: big(configsvc.MaxFileSize)}, {File: "b.txt", Content: big(configsvc.MaxChangesetSize - configsvc.MaxFileSize)}}}},
		{name: "changeset-over-limit", cs: configsvc.Changeset{Changes: []configsvc.Change{{File: "a.txt", Content: big(configsvc.MaxFileSize)}, {File: "b.txt", Content: big(configsvc.MaxChangesetSize - configsvc.MaxFileSize + 1)}}}, target: configsvc.ErrTooLarge, limit: configsvc.MaxChangesetSize},
		// Content is the Validator's business, not the structural check's.
		{name: "content-not-looked-at", cs: configsvc.Changeset{Changes: []configsvc.Change{change("a.json", "{")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cs.Validate()
			if tc.target == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.target) {
				t.Fatalf("Validate() = %v, want %v", err, tc.target)
			}
			if tc.field != "" {
				var fe *configsvc.FieldError
				if !errors.As(err, &fe) || fe.Field != tc.field {
					t.Fatalf("Validate() = %v, want a *FieldError on %q", err, tc.field)
				}
			}
			if tc.limit != 0 {
				var le *configsvc.LimitError
				if !errors.As(err, &le) || le.Limit != tc.limit || le.Size <= le.Limit {
					t.Fatalf("Validate() = %v, want a *LimitError with limit %d", err, tc.limit)
				}
			}
		})
	}
}

func TestApply(t *testing.T) {
	base := map[string]configsvc.FileMeta{
		"a.json": {Name: "a.json", Revision: 1, SHA256: configsvc.Checksum([]byte("{}")), Size: 2, Format: configsvc.FormatJSON},
		"b.txt":  {Name: "b.txt", Revision: 1, SHA256: configsvc.Checksum([]byte("b")), Size: 1, Format: configsvc.FormatText},
	}
	orig := map[string]configsvc.FileMeta{"a.json": base["a.json"], "b.txt": base["b.txt"]}
	rev := &configsvc.Revision{Number: 2, Changes: []configsvc.Change{
		{File: "a.json", Content: []byte(`{"x":1}`)},
		{File: "b.txt", Delete: true},
		{File: "c.yaml", Content: []byte("c: 1\n")},
	}}
	got, err := configsvc.Apply(base, rev)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]configsvc.FileMeta{
		"a.json": {Name: "a.json", Revision: 2, SHA256: configsvc.Checksum([]byte(`{"x":1}`)), Size: 7, Format: configsvc.FormatJSON},
		"c.yaml": {Name: "c.yaml", Revision: 2, SHA256: configsvc.Checksum([]byte("c: 1\n")), Size: 5, Format: configsvc.FormatYAML},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Apply = %+v, want %+v", got, want)
	}
	if !reflect.DeepEqual(base, orig) {
		t.Fatalf("Apply modified its input: %+v", base)
	}

	_, err = configsvc.Apply(base, &configsvc.Revision{Number: 2, Changes: []configsvc.Change{{File: "nope.txt", Delete: true}}})
	var fe *configsvc.FieldError
	if !errors.As(err, &fe) || fe.Value != "nope.txt" || !errors.Is(err, configsvc.ErrInvalid) {
		t.Fatalf("Apply deleting a missing file = %v, want an ErrInvalid *FieldError naming it", err)
	}
}

func TestChecksum(t *testing.T) {
	// SHA-256 of "abc" (FIPS 180-2 test vector).
	const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := configsvc.Checksum([]byte("abc")); got != want {
		t.Fatalf("Checksum(abc) = %s, want %s", got, want)
	}
}

func TestRevisionFiles(t *testing.T) {
	r := configsvc.Revision{Changes: []configsvc.Change{{File: "b"}, {File: "a", Delete: true}}}
	if got := r.Files(); !reflect.DeepEqual(got, []string{"b", "a"}) {
		t.Fatalf("Files() = %v", got)
	}
}

func TestDiff(t *testing.T) {
	from := map[string][]byte{"a": []byte("1"), "b": []byte("2"), "same": []byte("s")}
	to := map[string][]byte{"a": []byte("1*"), "c": []byte("3"), "same": []byte("s")}
	for _, tc := range []struct {
		name  string
		names []string
		want  []configsvc.Change
	}{
		{"all", nil, []configsvc.Change{
			{File: "a", Content: []byte("1*")}, {File: "b", Delete: true}, {File: "c", Content: []byte("3")},
		}},
		{"chosen", []string{"c", "same"}, []configsvc.Change{{File: "c", Content: []byte("3")}}},
		{"unknown", []string{"zzz"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := configsvc.Diff(from, to, tc.names); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Diff = %+v, want %+v", got, tc.want)
			}
		})
	}
	t.Run("identical", func(t *testing.T) {
		if got := configsvc.Diff(from, from, nil); len(got) != 0 {
			t.Fatalf("Diff of equal maps = %+v", got)
		}
	})
}

func TestInstanceValidate(t *testing.T) {
	labels := map[string]string{}
	for i := range configsvc.MaxLabels + 1 {
		labels[fmt.Sprint("l", i)] = "v"
	}
	for _, tc := range []struct {
		name   string
		inst   configsvc.Instance
		target error
	}{
		{"ok", configsvc.Instance{Service: "orders", ID: "orders-7", Addr: "10.0.0.7:8080"}, nil},
		{"bad-service", configsvc.Instance{Service: "Orders", ID: "o"}, configsvc.ErrInvalid},
		{"bad-id", configsvc.Instance{Service: "orders", ID: "a/b"}, configsvc.ErrInvalid},
		{"long-addr", configsvc.Instance{Service: "orders", ID: "o", Addr: strings.Repeat("a", 257)}, configsvc.ErrInvalid},
		{"too-many-labels", configsvc.Instance{Service: "orders", ID: "o", Labels: labels}, configsvc.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.inst.Validate()
			if tc.target == nil && err != nil || tc.target != nil && !errors.Is(err, tc.target) {
				t.Fatalf("Validate() = %v, want %v", err, tc.target)
			}
		})
	}
}

// TestAttackInstanceAddressPointsAnywhere: an agent registering its
// instance must not get an address the proxy would read as more than
// HOST:PORT (a URL with a path or user info, a scheme, spaces, a name that
// some resolvers read as an IP address); well-formed addresses of every kind
// still pass.
func TestAttackInstanceAddressPointsAnywhere(t *testing.T) {
	for _, addr := range []string{
		"", "10.0.0.7:8080", "[::1]:80", "[2001:db8::7]:65535", "orders-1:9001", "orders.svc.cluster.local:80",
		"compose_orders_1:80", "host.example.:443", "127.0.0.1:1",
	} {
		in := configsvc.Instance{Service: "orders", ID: "o", Addr: addr}
		if err := in.Validate(); err != nil {
			t.Errorf("addr %q refused: %v", addr, err)
		}
	}
	for _, addr := range []string{
		"http://169.254.169.254:80", "169.254.169.254:80/latest/meta-data", "user:pw@10.0.0.1:80", "10.0.0.1", ":8080",
		"10.0.0.1:0", "10.0.0.1:65536", "10.0.0.1:+80", "10.0.0.1:http", "10.0.0.1 :80", "evil.com:80?x=1", "a..b:80",
		"-a.com:80", "[fe80::1%eth0]:80", "::1:80", "[orders]:80", "127.1:80", "2130706433:80", "0x7f.1:80", "a%2fb:80",
		strings.Repeat("a", 250) + ".com:80",
	} {
		in := configsvc.Instance{Service: "orders", ID: "o", Addr: addr}
		err := in.Validate()
		var fe *configsvc.FieldError
		if !errors.As(err, &fe) || fe.Field != "addr" || !errors.Is(err, configsvc.ErrInvalid) {
			t.Errorf("addr %q: Validate() = %v, want a FieldError on addr", addr, err)
		}
	}
}

// TestAttackInstanceWeightOverflows: a weight label the balancer would
// overflow on (or read as a huge share of the traffic) is refused, naming
// the label and the limit.
func TestAttackInstanceWeightOverflows(t *testing.T) {
	for _, w := range []string{"0", "1", "1000", "0007"} {
		in := configsvc.Instance{Service: "orders", ID: "o", Labels: map[string]string{configsvc.WeightLabel: w}}
		if err := in.Validate(); err != nil {
			t.Errorf("weight %q refused: %v", w, err)
		}
	}
	for _, w := range []string{"1001", "9223372036854775807", "-1", "", "1e3", " 5", "10.5"} {
		in := configsvc.Instance{Service: "orders", ID: "o", Labels: map[string]string{configsvc.WeightLabel: w}}
		err := in.Validate()
		var fe *configsvc.FieldError
		if !errors.As(err, &fe) || fe.Field != "labels.weight" || !strings.Contains(fe.Msg, fmt.Sprint(configsvc.MaxInstanceWeight)) {
			t.Errorf("weight %q: Validate() = %v, want a FieldError on labels.weight naming %d", w, err, configsvc.MaxInstanceWeight)
		}
	}
}

func TestErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		msg    string
		target error
	}{
		{"limit", &configsvc.LimitError{What: `file "a.txt"`, Size: 10, Limit: 5}, `file "a.txt" is 10 bytes, over the limit of 5 bytes`, configsvc.ErrTooLarge},
		{"parse-line-col", &configsvc.ParseError{File: "a.json", Format: configsvc.FormatJSON, Line: 3, Column: 7, Msg: "unexpected ]"}, "a.json:3:7: invalid json: unexpected ]", configsvc.ErrInvalid},
		{"parse-line", &configsvc.ParseError{File: "a.toml", Format: configsvc.FormatTOML, Line: 2, Msg: "x"}, "a.toml:2: invalid toml: x", configsvc.ErrInvalid},
		{"parse-none", &configsvc.ParseError{File: "a.txt", Format: configsvc.FormatText, Msg: "x"}, "a.txt: invalid text: x", configsvc.ErrInvalid},
		{"field", &configsvc.FieldError{Field: "file", Value: "a/b", Msg: "bad"}, `file "a/b": bad`, configsvc.ErrInvalid},
		{"field-truncated", &configsvc.FieldError{Field: "f", Value: strings.Repeat("v", 100), Msg: "bad"}, `f "` + strings.Repeat("v", 80) + `…": bad`, configsvc.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.err.Error(); got != tc.msg {
				t.Fatalf("Error() = %q, want %q", got, tc.msg)
			}
			wrapped := fmt.Errorf("ctx: %w", tc.err)
			if !errors.Is(wrapped, tc.target) {
				t.Fatalf("%v does not match %v", wrapped, tc.target)
			}
			if errors.Is(wrapped, configsvc.ErrNotFound) {
				t.Fatalf("%v matches ErrNotFound", wrapped)
			}
		})
	}
}

package configsvc_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/sluicehq/sluice/configsvc"
)

// The documented rules (SPEC §2), as regular expressions: the validators must
// accept exactly what these match.
var (
	serviceRule = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	fileRule    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

func TestValidateServiceName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"orders", true},
		{"a", true},
		{"0", true},
		{"team-a-orders", true},
		{"a1-b2", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"Orders", false},
		{"-orders", false},
		{"orders-", false},
		{"-", false},
		{"or_ders", false},
		{"or.ders", false},
		{"a/b", false},
		{"..", false},
		{"orders\n", false},
		{"ordérs", false},
		{" orders", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, fn := range []func(string) error{configsvc.ValidateServiceName, configsvc.ValidateGroupName} {
				err := fn(tc.name)
				if (err == nil) != tc.ok {
					t.Fatalf("validate(%q) = %v, want ok=%v", tc.name, err, tc.ok)
				}
				if err != nil {
					wantFieldError(t, err)
				}
			}
		})
	}
}

func TestValidateFileName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"db.yaml", true},
		{"features.json", true},
		{"A", true},
		{"9.properties", true},
		{"a..b", true},
		{"a_b-c.d", true},
		{"trailing.", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false},
		{".", false},
		{"..", false},
		{".env", false},
		{"_x", false},
		{"-x", false},
		{"a/b", false},
		{"../etc", false},
		{`a\b`, false},
		{"a b", false},
		{"a\x00b", false},
		{"tab\t", false},
		{"naïve.txt", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := configsvc.ValidateFileName(tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateFileName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
			if err != nil {
				wantFieldError(t, err)
			}
			err = configsvc.ValidateInstanceID(tc.name)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateInstanceID(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			}
		})
	}
}

func wantFieldError(t *testing.T, err error) {
	t.Helper()
	var fe *configsvc.FieldError
	if !errors.As(err, &fe) || !errors.Is(err, configsvc.ErrInvalid) {
		t.Fatalf("error %v (%T) is not a *FieldError matching ErrInvalid", err, err)
	}
	if fe.Msg == "" || fe.Field == "" {
		t.Fatalf("FieldError %+v does not say which field and what is wrong", fe)
	}
}

// safeName checks the properties every accepted name must have, whatever
// the rule's details: no path separator, not a parent reference, no control
// or non-ASCII characters.
func safeName(t *testing.T, name string) {
	t.Helper()
	if strings.ContainsAny(name, `/\`) || name == ".." || name == "." {
		t.Fatalf("accepted %q, which is or contains a path element", name)
	}
	for _, r := range name {
		if r > unicode.MaxASCII || unicode.IsControl(r) || unicode.IsSpace(r) {
			t.Fatalf("accepted %q, which contains %U", name, r)
		}
	}
}

func FuzzValidateServiceName(f *testing.F) {
	for _, s := range []string{"orders", "a", "a-b", "-a", "a-", "A", "", "..", "a/b", "a\x00", strings.Repeat("z", 63), strings.Repeat("z", 64), "ä", "a--b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := configsvc.ValidateServiceName(name)
		if want := serviceRule.MatchString(name); (err == nil) != want {
			t.Fatalf("ValidateServiceName(%q) = %v, but the documented rule says ok=%v", name, err, want)
		}
		if err != nil {
			wantFieldError(t, err)
			return
		}
		safeName(t, name)
		if gerr := configsvc.ValidateGroupName(name); gerr != nil {
			t.Fatalf("service name %q accepted, group name refused: %v", name, gerr)
		}
	})
}

func FuzzValidateFileName(f *testing.F) {
	for _, s := range []string{"db.yaml", ".", "..", "...", "a..", ".a", "a/b", "a\\b", "", "a\n", strings.Repeat("f", 128), strings.Repeat("f", 129), "é.txt", "a b", "x\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := configsvc.ValidateFileName(name)
		if want := fileRule.MatchString(name) && name != "." && name != ".."; (err == nil) != want {
			t.Fatalf("ValidateFileName(%q) = %v, but the documented rule says ok=%v", name, err, want)
		}
		if err != nil {
			wantFieldError(t, err)
			return
		}
		safeName(t, name)
	})
}

func TestFormatOf(t *testing.T) {
	for _, tc := range []struct {
		file string
		want configsvc.Format
	}{
		{"a.json", configsvc.FormatJSON},
		{"a.JSON", configsvc.FormatJSON},
		{"a.yaml", configsvc.FormatYAML},
		{"a.yml", configsvc.FormatYAML},
		{"a.toml", configsvc.FormatTOML},
		{"app.properties", configsvc.FormatProperties},
		{"local.env", configsvc.FormatEnv},
		{"notes.txt", configsvc.FormatText},
		{"Makefile", configsvc.FormatText},
		{"a.json.bak", configsvc.FormatText},
	} {
		t.Run(tc.file, func(t *testing.T) {
			if got := configsvc.FormatOf(tc.file); got != tc.want {
				t.Fatalf("FormatOf(%q) = %s, want %s", tc.file, got, tc.want)
			}
		})
	}
}

func TestMatchGlob(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"team-a-*", "team-a-orders", true},
		{"team-a-*", "team-b-orders", false},
		{"*", "anything", true},
		{"orders", "orders", true},
		{"orders", "orders2", false},
		{"order?", "orders", true},
		{"[a-z]*", "orders", false},
		{"[a-z]*", "[a-z]*", true},
		{"a/*", "a/b", false},
		{"a/*", "a/*", true},
	} {
		t.Run(tc.pattern+"~"+tc.name, func(t *testing.T) {
			if got := configsvc.MatchGlob(tc.pattern, tc.name); got != tc.want {
				t.Fatalf("MatchGlob(%q, %q) = %v, want %v", tc.pattern, tc.name, got, tc.want)
			}
		})
	}
}

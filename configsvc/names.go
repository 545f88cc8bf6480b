package configsvc

import (
	"path"
	"strconv"
	"strings"
)

// Reserved names (SPEC §2). The limits are in limits.go.
const (
	// SystemService is the reserved service whose routes.yaml configures the proxy.
	SystemService = "sluice-system"
	// RoutesFile is the file of SystemService that holds the route table.
	RoutesFile = "routes.yaml"
)

// ValidateServiceName checks a service or shared group name against
// [a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?. It returns a *FieldError (ErrInvalid).
func ValidateServiceName(name string) error {
	return validateName("service", name)
}

// ValidateGroupName checks a shared group name; the rule is the service rule.
func ValidateGroupName(name string) error {
	return validateName("group", name)
}

func validateName(field, name string) error {
	const rule = "must be 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit"
	if len(name) == 0 || len(name) > MaxNameLen {
		return &FieldError{Field: field, Value: name, Msg: rule}
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(name)-1:
		default:
			return &FieldError{Field: field, Value: name, Msg: rule}
		}
	}
	return nil
}

// ValidateFileName checks a config file name against
// [A-Za-z0-9][A-Za-z0-9._-]{0,127}; "." and ".." and any "/" are refused.
// It returns a *FieldError (ErrInvalid).
func ValidateFileName(name string) error {
	const rule = "must be 1-128 characters of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
	if len(name) == 0 || len(name) > MaxFileNameLen || name == "." || name == ".." {
		return &FieldError{Field: "file", Value: name, Msg: rule}
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '.' || c == '_' || c == '-') && i > 0:
		default:
			return &FieldError{Field: "file", Value: name, Msg: rule}
		}
	}
	return nil
}

// ValidateInstanceID checks an instance id: 1-128 characters of
// A-Z a-z 0-9 . _ - starting with a letter or digit (same as file names).
func ValidateInstanceID(id string) error {
	if err := ValidateFileName(id); err != nil {
		return &FieldError{Field: "instance", Value: id, Msg: err.(*FieldError).Msg}
	}
	return nil
}

// MatchGlob reports whether name matches a grant pattern such as "team-a-*".
// Only '*' and '?' are special; a malformed pattern matches nothing.
func MatchGlob(pattern, name string) bool {
	if strings.ContainsAny(pattern, "[]\\/") {
		return pattern == name
	}
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}

// Format is a config file's format, set by its extension.
type Format string

// Formats Sluice validates before publish and the SDK decodes.
const (
	FormatJSON       Format = "json"
	FormatYAML       Format = "yaml"
	FormatTOML       Format = "toml"
	FormatProperties Format = "properties"
	FormatEnv        Format = "env"
	FormatText       Format = "text" // .txt and any other extension: must be UTF-8
)

// FormatOf returns the format for a file name by its extension:
// .json, .yaml/.yml, .toml, .properties, .env; anything else is FormatText.
func FormatOf(name string) Format {
	switch strings.ToLower(path.Ext(name)) {
	case ".json":
		return FormatJSON
	case ".yaml", ".yml":
		return FormatYAML
	case ".toml":
		return FormatTOML
	case ".properties":
		return FormatProperties
	case ".env":
		return FormatEnv
	}
	return FormatText
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// quote renders a value echoed in an error: quoted, and truncated to
// MaxEchoLen bytes.
func quote(s string) string { return strconv.Quote(Truncate(s, MaxEchoLen)) }

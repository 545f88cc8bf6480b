// Package format validates and decodes config file content by the format its
// file name's extension sets (configsvc.FormatOf): JSON (encoding/json),
// YAML (goccy/go-yaml), TOML (BurntSushi/toml), Java properties
// (magiconair/properties), .env files and UTF-8 text. Errors are
// *configsvc.ParseError values that name the file, line and column.
package format

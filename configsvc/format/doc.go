// Package format validates and decodes config file content by the format its
// file name's extension sets (configsvc.FormatOf): JSON (encoding/json),
// YAML (gopkg.in/yaml.v3), TOML (BurntSushi/toml), Java properties
// (magiconair/properties), .env files and UTF-8 text. Errors are
// *configsvc.ParseError values that name the file, line and column.
//
// Every format is parsed within a budget of work and memory proportional
// to its size (docs/security.md, "Parser budgets"): YAML alias and
// merge-key expansion and duplicate-key comparisons are bounded before
// anything is decoded (ParseYAML, MinYAMLExpansion, MaxYAMLKeyPairs), TOML
// keys nest at most MaxTOMLDepth levels, and properties values are
// literal: ${key} is never expanded, from the file or from the process
// environment. A document over a budget is a *configsvc.ParseError naming
// the limit. The YAML parsing of router/routesfile goes through ParseYAML
// too, so routes.yaml has the same budgets.
package format

// Package schema validates config files against JSON Schemas kept beside
// them: a file F of a service or shared group is validated against
// F.schema.json of the same tree when that file exists (db.yaml by
// db.yaml.schema.json). The schema is a file of the tree, so it is
// published atomically with the config, versioned, diffed and rolled back
// with it.
//
// It adapts github.com/santhosh-tekuri/jsonschema/v6 (JSON Schema draft
// 2020-12 by default, and the earlier drafts a schema names in $schema).
// JSON, YAML and TOML files are validated on their JSON data model,
// properties and .env files as objects of strings (format.Data). Remote
// $refs are never fetched: a reference resolves only to another file of
// the same tree ("common.schema.json#/$defs/port"). A schema file is itself
// checked against its draft's metaschema when it is published.
//
// Validator is the configsvc.Validator of publishes; Checker does the work
// for it and for `sluice validate`, which checks a local directory without
// a server.
package schema

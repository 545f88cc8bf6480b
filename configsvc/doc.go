// Package configsvc holds Sluice's configuration domain: services and shared
// groups of config files, their immutable numbered revisions, the head
// manifest, links between services and shared groups, registered instances,
// the Store interface that the ZooKeeper (zkstore) and bbolt (boltstore)
// adapters implement, and the domain's limits (limits.go). Content is
// validated once per publish, by the ValidatingStore in front of a Store
// (Validating, Validator); the stores check only a changeset's shape.
//
// The package imports only the standard library. Technology lives in
// subpackages named after what they wrap: format (YAML, TOML, properties
// parsers), zkstore, boltstore, httpapi (gin). Both stores pass the one
// conformance suite in storetest.
package configsvc

// Package localkey is a secrets.Keyring whose key-encryption keys live in a
// local 0600 file (the default of `sluice server`: <data-dir>/secrets.key).
// It wraps data keys with AES-256-GCM and the standard library only.
package localkey

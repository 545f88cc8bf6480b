// Package vaulttransit is a secrets.Keyring whose key-encryption key is a
// HashiCorp Vault transit key (github.com/hashicorp/vault/api): wrapping
// and unwrapping are Vault's transit encrypt and decrypt, so the key never
// leaves Vault.
package vaulttransit

// Package secrets encrypts secret config files at rest with envelope
// encryption: each revision of a secret file gets its own random data key
// (AES-256-GCM, the service, file and revision bound as associated data),
// and the data key is wrapped by a store key of the Keychain, itself
// wrapped by the key-encryption key of a Keyring (subpackages localkey,
// vaulttransit, agekeys), so that a rotation re-wraps a few keys and never
// rewrites history. The envelope is stored as
// the file's content, so every layer that carries content (stores, watch
// events, SDK caches, archives) carries ciphertext only.
//
// Store is the decorator the admin server publishes and reads through: it
// seals secret files on publish and shows them to each read as its context
// asks (configsvc.SecretViewOf): redacted, decrypted or as the envelope.
// It imports only the standard library. See docs/secrets.md.
package secrets

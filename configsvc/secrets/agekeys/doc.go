// Package agekeys is a secrets.Keyring that wraps data keys to age
// recipients (filippo.io/age): the server's own X25519 identity, from a
// 0600 identity file, plus optional further recipients (an offline escrow
// key) that can recover every store key without the server.
package agekeys

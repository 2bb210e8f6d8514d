// Package hsm keeps the vault's master key in a hardware security module,
// reached through PKCS#11: an AES-256 key, generated inside the HSM as
// sensitive and non-extractable, wraps and unwraps the vault's data keys
// with AES-GCM (CKM_AES_GCM), so that the master key never leaves the
// HSM. It needs cgo (the PKCS#11 module is a C library); a binary built
// without cgo refuses the HSM plainly. Tested against SoftHSM2.
package hsm

// Config names the HSM key.
type Config struct {
	Module string // the PKCS#11 module (shared library), an absolute path
	Token  string // the token's label
	Key    string // the AES key's label; generated on the token if absent
	PIN    string // the token's user PIN
}

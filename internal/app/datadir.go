package app

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ostiary/ostiary/internal/audit/wal"
)

// Layout names the files of a data directory:
//
//	ostiary.db              the SQLite store (plus -wal and -shm)
//	audit.checkpoint        the latest signed audit checkpoint
//	keys/audit-signing.key  Ed25519 private key (PKCS #8 PEM), mode 0600
//	keys/audit-signing.pub  its public key (PKIX PEM): give it to auditors
//	keys/apikey-hmac.key    key for hashing API keys (hex), mode 0600
//	keys/identity-signing.key Ed25519 key signing identity assertions to upstreams, mode 0600
//	ostiary.lock            held by the running server
type Layout struct{ Dir string }

func (l Layout) DB() string         { return filepath.Join(l.Dir, "ostiary.db") }
func (l Layout) Checkpoint() string { return filepath.Join(l.Dir, "audit.checkpoint") }
func (l Layout) KeysDir() string    { return filepath.Join(l.Dir, "keys") }
func (l Layout) SigningKey() string { return filepath.Join(l.KeysDir(), "audit-signing.key") }
func (l Layout) SigningPub() string { return filepath.Join(l.KeysDir(), "audit-signing.pub") }
func (l Layout) HMACKey() string    { return filepath.Join(l.KeysDir(), "apikey-hmac.key") }
func (l Layout) MasterKey() string  { return filepath.Join(l.KeysDir(), "master.key") }
func (l Layout) WebhookKey() string { return filepath.Join(l.KeysDir(), "webhook-signing.key") }
func (l Layout) IdentityKey() string {
	return filepath.Join(l.KeysDir(), "identity-signing.key")
}
func (l Layout) Lock() string { return filepath.Join(l.Dir, "ostiary.lock") }

// AuditLog is the directory of the audit log, the chain's durable copy.
func (l Layout) AuditLog() string { return filepath.Join(l.Dir, "audit") }

// Initialised reports whether dir holds (part of) an installation.
func Initialised(dir string) bool { return Layout{Dir: dir}.initialised() }

// initialised reports whether anything of an installation is present.
func (l Layout) initialised() bool {
	for _, p := range []string{l.DB(), l.KeysDir(), l.Checkpoint(), l.AuditLog()} {
		if _, err := os.Lstat(p); err == nil {
			return true
		}
	}
	return false
}

// checkInitialised explains plainly what is missing from a data directory.
func (l Layout) checkInitialised() error {
	st, err := os.Stat(l.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("data directory %s does not exist: run 'ostiary init --data %s' first", l.Dir, l.Dir)
	}
	if err != nil {
		return fmt.Errorf("data directory %s: %w", l.Dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", l.Dir)
	}
	var missing []string
	for _, p := range []string{l.DB(), l.Checkpoint(), l.SigningKey(), l.SigningPub(), l.HMACKey()} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, strings.TrimPrefix(p, l.Dir+string(filepath.Separator)))
		}
	}
	switch {
	case len(missing) == 5:
		return fmt.Errorf("data directory %s is not initialised: run 'ostiary init --data %s' first", l.Dir, l.Dir)
	case len(missing) > 0:
		return fmt.Errorf("data directory %s is incomplete or damaged: missing %s", l.Dir, strings.Join(missing, ", "))
	}
	return nil
}

// writeKeys creates the signing and hashing keys, readable by owner only.
func (l Layout) writeKeys() error {
	if err := os.Mkdir(l.KeysDir(), 0o700); err != nil {
		return err
	}
	priv, privPEM, err := newEd25519PEM()
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return err
	}
	hmacKey := make([]byte, 32)
	rand.Read(hmacKey)
	files := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{l.SigningKey(), privPEM, 0o600},
		{l.SigningPub(), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644},
		{l.HMACKey(), []byte(hex.EncodeToString(hmacKey) + "\n"), 0o600},
	}
	for _, f := range files {
		if err := writeFileSync(f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	if err := l.ensureIdentityKey(); err != nil {
		return err
	}
	return l.ensureMasterKey()
}

// ensureMasterKey creates the default vault master key if it is missing.
// Production installations should keep the master key elsewhere and give
// its path with OSTIARY_MASTER_KEY_FILE: a copy of the data directory then
// holds no way to open the vault.
func (l Layout) ensureMasterKey() error {
	created, err := EnsureMasterKeyFile(l.MasterKey())
	if err != nil || !created {
		return err
	}
	return syncDir(l.KeysDir())
}

// EnsureMasterKeyFile writes a fresh random master key (hex, mode 0600) to
// path unless the file exists; it reports whether it wrote one.
func EnsureMasterKeyFile(path string) (bool, error) {
	k := make([]byte, 32)
	rand.Read(k)
	err := writeFileSync(path, []byte(hex.EncodeToString(k)+"\n"), 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	return err == nil, err
}

// readWebhookKey reads the webhook signing key (owner-only): the file's
// text, trimmed, is the HMAC key; at least 32 characters.
func readWebhookKey(path string) ([]byte, error) {
	b, err := readSecretFile(path)
	if err != nil {
		return nil, fmt.Errorf("webhook signing key: %w", err)
	}
	k := []byte(strings.TrimSpace(string(b)))
	if len(k) < 32 {
		return nil, fmt.Errorf("%s: a webhook signing key is at least 32 characters", path)
	}
	return k, nil
}

// ReadMasterKey reads a hex master key file (owner-only).
func ReadMasterKey(path string) ([]byte, error) {
	b, err := readSecretFile(path)
	if err != nil {
		return nil, fmt.Errorf("vault master key: %w", err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) != 32 {
		return nil, fmt.Errorf("%s does not hold a 32-byte hex master key", path)
	}
	return k, nil
}

// ensureIdentityKey creates the identity-assertion signing key if it is
// missing (data directories initialised before it existed get one on start).
func (l Layout) ensureIdentityKey() error {
	if _, err := os.Stat(l.IdentityKey()); err == nil {
		return nil
	}
	_, privPEM, err := newEd25519PEM()
	if err != nil {
		return err
	}
	if err := writeFileSync(l.IdentityKey(), privPEM, 0o600); err != nil {
		return err
	}
	return syncDir(l.KeysDir())
}

func newEd25519PEM() (ed25519.PrivateKey, []byte, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	return priv, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func writeFileSync(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readSecretFile reads a key file, refusing one that others may read.
func readSecretFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s has permissions %#o: a key file must be readable by its owner only (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	return os.ReadFile(path)
}

func (l Layout) signingKey() (ed25519.PrivateKey, error) { return readEd25519(l.SigningKey()) }

func (l Layout) identityKey() (ed25519.PrivateKey, error) { return readEd25519(l.IdentityKey()) }

func readEd25519(path string) (ed25519.PrivateKey, error) {
	b, err := readSecretFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s is not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s is not an Ed25519 key", path)
	}
	return priv, nil
}

// ReadPublicKey reads a PKIX PEM Ed25519 public key.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%s is not a PEM public key", path)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s is not an Ed25519 key", path)
	}
	return pub, nil
}

func (l Layout) hmacKey() ([]byte, error) {
	b, err := readSecretFile(l.HMACKey())
	if err != nil {
		return nil, err
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) < 32 {
		return nil, fmt.Errorf("%s does not hold a hex key of at least 32 bytes", l.HMACKey())
	}
	return k, nil
}

// lock takes the data directory's exclusive lock, so that two servers never
// extend the same chain.
func (l Layout) lock() (*os.File, error) {
	f, err := os.OpenFile(l.Lock(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := wal.FlockBriefly(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory %s is in use by another ostiary process", l.Dir)
	}
	return f, nil
}

package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ostiary/ostiary/internal/jcs"
	"github.com/ostiary/ostiary/internal/strictjson"
)

// Checkpoint is a signed statement "the chain's record Seq has hash Hash"
// and, from format 2 on, "the Merkle tree over records 1…Seq has root
// Root" (merkle.go). Checkpoints are kept in the store and, the latest one,
// in a file beside it, so that cutting records off the tail of the chain is
// detectable; and pushed off the machine (anchors) so that rolling the
// whole directory back is too.
type Checkpoint struct {
	Seq   uint64
	Hash  [32]byte
	Root  []byte // the Merkle root over records 1…Seq (32 bytes); nil in a format-1 checkpoint
	Time  time.Time
	KeyID string // fingerprint of the signing public key
	Sig   []byte // Ed25519 over SignedBytes()
}

const (
	checkpointDomain  = "ostiary-audit-checkpoint-v1\n"
	checkpointDomain2 = "ostiary-audit-checkpoint-v2\n"
)

// SignedBytes is what the signature covers: a domain separator and the
// canonical JSON of seq, hash, time and key id, and root in format 2 (its
// own domain: a format-2 checkpoint stripped of its root does not verify
// as a format-1 one).
func (c *Checkpoint) SignedBytes() []byte {
	domain := checkpointDomain
	m := map[string]any{
		"seq":    c.Seq,
		"hash":   hex.EncodeToString(c.Hash[:]),
		"time":   FormatTime(c.Time),
		"key_id": c.KeyID,
	}
	if c.Root != nil {
		domain = checkpointDomain2
		m["root"] = hex.EncodeToString(c.Root)
	}
	b, err := jcs.Append([]byte(domain), m)
	if err != nil { // only strings and a small integer: cannot fail
		panic(err)
	}
	return b
}

// KeyFingerprint names a public key: the first 16 bytes of its SHA-256, hex.
func KeyFingerprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:16])
}

// Sign fills KeyID and Sig.
func (c *Checkpoint) Sign(priv ed25519.PrivateKey) {
	c.Time = normalTime(c.Time)
	c.KeyID = KeyFingerprint(priv.Public().(ed25519.PublicKey))
	c.Sig = ed25519.Sign(priv, c.SignedBytes())
}

// Verify checks the signature against pub.
func (c *Checkpoint) Verify(pub ed25519.PublicKey) error {
	if c.Root != nil && len(c.Root) != sha256.Size {
		return fmt.Errorf("checkpoint at seq %d has a malformed Merkle root", c.Seq)
	}
	if c.KeyID != KeyFingerprint(pub) {
		return fmt.Errorf("checkpoint at seq %d was signed by key %s, not by %s", c.Seq, c.KeyID, KeyFingerprint(pub))
	}
	if !ed25519.Verify(pub, c.SignedBytes(), c.Sig) {
		return fmt.Errorf("checkpoint at seq %d has an invalid signature", c.Seq)
	}
	return nil
}

type checkpointFile struct {
	Seq   uint64 `json:"seq"`
	Hash  string `json:"hash"`
	Root  string `json:"root,omitempty"`
	Time  string `json:"time"`
	KeyID string `json:"key_id"`
	Sig   string `json:"sig"`
}

// MarshalJSON encodes the checkpoint as stored in its file.
func (c Checkpoint) MarshalJSON() ([]byte, error) {
	var root string
	if c.Root != nil {
		root = hex.EncodeToString(c.Root)
	}
	return json.Marshal(checkpointFile{c.Seq, hex.EncodeToString(c.Hash[:]), root, FormatTime(c.Time), c.KeyID,
		base64.StdEncoding.EncodeToString(c.Sig)})
}

// UnmarshalJSON is strict: unknown fields or malformed values are errors.
func (c *Checkpoint) UnmarshalJSON(b []byte) error {
	var f checkpointFile
	if err := strictjson.Decode(b, &f); err != nil {
		return err
	}
	h, err := hex.DecodeString(f.Hash)
	if err != nil || len(h) != 32 {
		return errors.New("checkpoint: malformed hash")
	}
	t, err := time.Parse(time.RFC3339Nano, f.Time)
	if err != nil {
		return errors.New("checkpoint: malformed time")
	}
	sig, err := base64.StdEncoding.DecodeString(f.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return errors.New("checkpoint: malformed signature")
	}
	var root []byte
	if f.Root != "" {
		root, err = hex.DecodeString(f.Root)
		if err != nil || len(root) != sha256.Size || hex.EncodeToString(root) != f.Root {
			return errors.New("checkpoint: malformed root")
		}
	}
	*c = Checkpoint{Seq: f.Seq, Root: root, Time: t, KeyID: f.KeyID, Sig: sig}
	copy(c.Hash[:], h)
	return nil
}

// WriteCheckpointFile replaces the file at path with c, atomically and
// durably: write a temporary file, fsync it, rename it over, fsync the
// directory.
func WriteCheckpointFile(path string, c Checkpoint) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".checkpoint-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ReadCheckpointFile reads a checkpoint written by WriteCheckpointFile.
func ReadCheckpointFile(path string) (Checkpoint, error) {
	var c Checkpoint
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := c.UnmarshalJSON(b); err != nil {
		return c, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

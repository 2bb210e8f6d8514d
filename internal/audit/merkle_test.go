package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ostiary/ostiary/internal/audit"
)

// Every record of chains of every size up to 40 has an inclusion proof to
// the root its checkpoint signs (RFC 6962 trees are unbalanced at most
// sizes: this covers every shape of the right border), and a proof does
// not verify for another record, another position or another root.
func TestInclusionProofsEverySize(t *testing.T) {
	c := newChain(t)
	for size := 1; size <= 40; size++ {
		c.write(t, 1)
		cp, err := c.w.Attest(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if cp.Seq != uint64(size) || len(cp.Root) != 32 {
			t.Fatalf("checkpoint of %d records: seq %d, root %x", size, cp.Seq, cp.Root)
		}
		if err := cp.Verify(c.pub); err != nil {
			t.Fatal(err)
		}
		seqs := make([]uint64, size)
		for i := range seqs {
			seqs[i] = uint64(i + 1)
		}
		proven, err := audit.ProveRecords(context.Background(), c.w.Log(), cp, seqs)
		if err != nil {
			t.Fatal(err)
		}
		// The root the writer signs is the one transparency-dev/merkle's
		// compact range computes from the same leaves.
		rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
		rng := rf.NewEmptyRange(0)
		for _, p := range proven {
			leaf := audit.LeafHash(sha256.Sum256(p.Payload))
			if err := rng.Append(leaf[:], nil); err != nil {
				t.Fatal(err)
			}
		}
		if root, err := rng.GetRootHash(nil); err != nil || !bytes.Equal(root, cp.Root) {
			t.Fatalf("size %d: root %x, the library's %x", size, cp.Root, root)
		}
		for _, p := range proven {
			if err := audit.VerifyInclusion(p.Payload, p.Seq, cp.Seq, p.Proof, cp.Root); err != nil {
				t.Fatalf("size %d, record %d: %v", size, p.Seq, err)
			}
			if size > 1 {
				other := proven[(int(p.Seq))%size]
				if audit.VerifyInclusion(other.Payload, p.Seq, cp.Seq, p.Proof, cp.Root) == nil {
					t.Fatalf("size %d: record %d's proof verifies record %d", size, p.Seq, other.Seq)
				}
			}
			bad := append([]byte(nil), cp.Root...)
			bad[0] ^= 1
			if audit.VerifyInclusion(p.Payload, p.Seq, cp.Seq, p.Proof, bad) == nil {
				t.Fatalf("size %d, record %d: verifies against another root", size, p.Seq)
			}
		}
	}
}

// A checkpoint of format 1 (no Merkle root, as written before roots)
// still verifies, from its file and from the store; a format-2 checkpoint
// stripped of its root, or with its root changed, does not.
func TestCheckpointFormatsCompatible(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	old := audit.Checkpoint{Seq: 7, Hash: sha256.Sum256([]byte("x")), Time: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	old.Sign(priv)
	b, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "root") {
		t.Fatalf("a format-1 checkpoint's file gained a root: %s", b)
	}
	var back audit.Checkpoint
	if err := back.UnmarshalJSON(b); err != nil || back.Verify(pub) != nil || back.Root != nil {
		t.Fatalf("format-1 checkpoint read back: %v, %v", err, back.Verify(pub))
	}
	// The exact bytes a format-1 signature covers are unchanged.
	want := "ostiary-audit-checkpoint-v1\n" + `{"hash":"`
	if !strings.HasPrefix(string(old.SignedBytes()), want) || strings.Contains(string(old.SignedBytes()), "root") {
		t.Fatalf("format-1 signed bytes: %s", old.SignedBytes())
	}

	root := sha256.Sum256([]byte("root"))
	cp := audit.Checkpoint{Seq: 7, Hash: old.Hash, Root: root[:], Time: old.Time}
	cp.Sign(priv)
	if err := cp.Verify(pub); err != nil {
		t.Fatal(err)
	}
	stripped := cp
	stripped.Root = nil
	if stripped.Verify(pub) == nil {
		t.Fatal("a format-2 checkpoint without its root verifies")
	}
	changed := cp
	changed.Root = append([]byte(nil), cp.Root...)
	changed.Root[31] ^= 1
	if changed.Verify(pub) == nil {
		t.Fatal("a format-2 checkpoint with another root verifies")
	}
	b, _ = json.Marshal(cp)
	var back2 audit.Checkpoint
	if err := back2.UnmarshalJSON(b); err != nil || back2.Verify(pub) != nil {
		t.Fatalf("format-2 checkpoint read back: %v", err)
	}
	hexRoot := hex.EncodeToString(cp.Root)
	upper := strings.Replace(string(b), hexRoot, strings.ToUpper(hexRoot), 1)
	var x audit.Checkpoint
	if x.UnmarshalJSON([]byte(upper)) == nil {
		t.Fatal("a root in upper-case hex was accepted")
	}

	// The store keeps both formats.
	c := newChain(t)
	for _, x := range []audit.Checkpoint{old, cp} {
		if err := c.store.SaveCheckpoint(context.Background(), x); err != nil {
			t.Fatal(err)
		}
	}
	cps, err := c.store.Checkpoints(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for _, x := range cps {
		if x.Seq == 7 {
			got++
			if err := x.Verify(pub); err != nil || x.Root != nil {
				t.Fatalf("format-1 checkpoint from the store: %v (root %x)", err, x.Root)
			}
		}
	}
	if got != 1 {
		t.Fatalf("%d checkpoints at seq 7", got)
	}
}

// A log whose records match the checkpoints' hashes but whose signed root
// does not match the records is refused by verification: the roots are
// checked, not just carried.
func TestVerifyChecksMerkleRoots(t *testing.T) {
	c := newChain(t)
	c.write(t, 5)
	cp, err := c.w.Attest(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.verify(t); err != nil {
		t.Fatal(err)
	}
	forged := audit.Checkpoint{Seq: cp.Seq, Hash: cp.Hash, Root: make([]byte, 32), Time: cp.Time}
	forged.Sign(c.priv)
	_, err = audit.VerifyLog(context.Background(), c.logDir, c.pub, forged, nil)
	if !audit.IsChainError(err) || !strings.Contains(err.Error(), "Merkle root") {
		t.Fatalf("a checkpoint whose root is not the records': %v", err)
	}
}

// A start takes the tree from the file the last checkpoint left when it
// is that checkpoint's, and rebuilds it from the log when the file is
// missing or wrong: either way the next checkpoint's root is the log's.
func TestTreeFileIsOnlyACache(t *testing.T) {
	c := newChain(t)
	c.write(t, 37)
	for _, damage := range []func(path string){
		func(string) {}, // as left: used
		func(p string) { os.Remove(p) },
		func(p string) { // the right seq, the wrong peaks
			var f struct {
				Seq   uint64   `json:"seq"`
				Peaks []string `json:"peaks"`
			}
			b, _ := os.ReadFile(p)
			if err := json.Unmarshal(b, &f); err != nil || len(f.Peaks) == 0 {
				t.Fatalf("tree file %s: %v", b, err)
			}
			f.Peaks[0] = strings.Repeat("0", 64)
			b, _ = json.Marshal(f)
			os.WriteFile(p, b, 0o600)
		},
		func(p string) { os.WriteFile(p, []byte("{"), 0o600) },
	} {
		c.w.Close() // a final checkpoint and its tree file
		if _, err := os.Stat(c.cpPath + ".tree"); err != nil {
			t.Fatal(err)
		}
		damage(c.cpPath + ".tree")
		if err := c.restart(t, true); err != nil {
			t.Fatal(err)
		}
		c.write(t, 3)
		cp, err := c.w.Attest(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := audit.ProveRecords(context.Background(), c.w.Log(), cp, []uint64{1, cp.Seq}); err != nil {
			t.Fatalf("after a start with that tree file: %v", err)
		}
	}
	if _, err := c.verify(t); err != nil {
		t.Fatal(err)
	}
}

package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"os"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ostiary/ostiary/internal/audit/wal"
	"github.com/ostiary/ostiary/internal/strictjson"
)

// The chain's records are also the leaves of a Merkle tree (RFC 6962/9162,
// SHA-256): leaf i (0-based) is record i+1, and its leaf hash is
// SHA-256(0x00 ‖ the record's hash). A checkpoint of format 2 signs the
// tree's root over records 1…seq, so a record can be proven to be in the
// chain with log2(seq) hashes of other subtrees, and nothing of any other
// record (DESIGN.md, "Evidence bundles").

// LeafHash is the Merkle leaf hash of the record whose hash is h.
func LeafHash(h [32]byte) [32]byte {
	var b [33]byte
	copy(b[1:], h[:]) // b[0] is the RFC 6962 leaf prefix, 0x00
	return sha256.Sum256(b[:])
}

func nodeHash(l, r []byte) []byte { return rfc6962.DefaultHasher.HashChildren(l, r) }

// node is the RFC 6962 interior node hash of l and r, without allocating.
func node(l, r *[32]byte) [32]byte {
	var b [65]byte
	b[0] = 0x01
	copy(b[1:33], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// merkleTree is the compact range of the tree over the whole chain: the
// roots of its perfect subtrees, one per bit set in its size, largest
// first (at most 64 hashes). Appending costs one leaf hash and, on
// average, one node hash; nothing is allocated.
type merkleTree struct {
	n     uint64
	peaks [64][32]byte
	depth int // peaks in use
}

func newMerkleTree() *merkleTree { return &merkleTree{} }

// add appends the leaf of the record whose hash is h.
func (t *merkleTree) add(h [32]byte) {
	t.addLeaf(LeafHash(h))
}

func (t *merkleTree) addLeaf(leaf [32]byte) { t.addVisit(leaf, nil) }

// addVisit appends a leaf and calls visit, if set, with every perfect
// subtree it completes: the leaf itself (level 0, index n) and each node
// merged (level l, index n>>l).
func (t *merkleTree) addVisit(leaf [32]byte, visit func(level uint, index uint64, h *[32]byte)) {
	t.peaks[t.depth] = leaf
	t.depth++
	if visit != nil {
		visit(0, t.n, &t.peaks[t.depth-1])
	}
	level := uint(0)
	for m := t.n; m&1 == 1; m >>= 1 { // each trailing 1 of the old size: two subtrees of one size merge
		t.peaks[t.depth-2] = node(&t.peaks[t.depth-2], &t.peaks[t.depth-1])
		t.depth--
		level++
		if visit != nil {
			visit(level, t.n>>level, &t.peaks[t.depth-1])
		}
	}
	t.n++
}

func (t *merkleTree) size() uint64 { return t.n }

// root is the tree's root hash (that of the empty string for no records).
func (t *merkleTree) root() []byte {
	if t.n == 0 {
		return rfc6962.DefaultHasher.EmptyRoot()
	}
	r := t.peaks[t.depth-1]
	for i := t.depth - 2; i >= 0; i-- {
		r = node(&t.peaks[i], &r)
	}
	return r[:]
}

// loadTree builds the tree over the log's records 1…seq: from the tree
// file the last checkpoint left (treeFile), if it is that checkpoint's,
// and the records after it; else from every record of the log (one
// SHA-256 of each record's bytes: about 1.2 µs a record without SHA
// instructions).
func (w *Writer) loadTree() (*merkleTree, error) {
	t, from := newMerkleTree(), uint64(1)
	if saved, ok := w.savedTree(); ok {
		t, from = saved, saved.size()+1
	}
	if from > w.seq {
		return t, nil
	}
	rd, err := w.log.Reader(from)
	if err != nil {
		return nil, err
	}
	for t.size() < w.seq && rd.Next() {
		t.add(sha256.Sum256(rd.Payload()))
	}
	if err := rd.Err(); err != nil {
		return nil, fmt.Errorf("audit: read the log for its Merkle tree: %w", err)
	}
	if t.size() != w.seq {
		return nil, fmt.Errorf("audit: the log ends at frame %d, not %d", t.size(), w.seq)
	}
	return t, nil
}

// treeFile holds the compact range of the tree at the latest checkpoint,
// beside the checkpoint file, so that a start hashes only the records
// after it. It is a cache: one that is missing, stale, or not that of the
// checkpoint's signed root is ignored.
type treeFile struct {
	Seq   uint64   `json:"seq"`
	Peaks []string `json:"peaks"`
}

func (w *Writer) treePath() string { return w.cfg.CheckpointPath + ".tree" }

// savedTree returns the saved tree if it is that of the latest
// checkpoint (its root the signed one) and the log reaches it; the
// checkpoint was checked against the log (checkLatest) first.
func (w *Writer) savedTree() (*merkleTree, bool) {
	if !w.cfg.RequireCheckpoint {
		return nil, false
	}
	cp, err := ReadCheckpointFile(w.cfg.CheckpointPath)
	if err != nil || cp.Root == nil || cp.Seq == 0 || cp.Seq > w.seq {
		return nil, false
	}
	b, err := os.ReadFile(w.treePath())
	if err != nil {
		return nil, false
	}
	var f treeFile
	if strictjson.Decode(b, &f) != nil || f.Seq != cp.Seq || len(f.Peaks) != bits.OnesCount64(f.Seq) {
		return nil, false
	}
	t := &merkleTree{n: f.Seq, depth: len(f.Peaks)}
	for i, p := range f.Peaks {
		h, err := hex.DecodeString(p)
		if err != nil || len(h) != 32 {
			return nil, false
		}
		copy(t.peaks[i][:], h)
	}
	if string(t.root()) != string(cp.Root) {
		return nil, false
	}
	return t, true
}

// saveTree writes the tree file for the checkpoint just made (replacing
// it atomically; not synced: a file lost to a crash only costs the next
// start a read of the whole log).
func (w *Writer) saveTree() error {
	f := treeFile{Seq: w.tree.size(), Peaks: make([]string, w.tree.depth)}
	for i := range f.Peaks {
		f.Peaks[i] = hex.EncodeToString(w.tree.peaks[i][:])
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	tmp := w.treePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, w.treePath())
}

// Proven is one record with its inclusion proof in the tree of a
// checkpoint: the canonical bytes the log holds and the hashes of the
// subtrees beside its path to the root, leaf first.
type Proven struct {
	Seq     uint64
	Payload []byte
	Proof   [][]byte
}

// ProveRecords reads the log's records 1…cp.Seq, checks that their tree's
// root is the one cp signs, and returns each record of seqs (ascending,
// each within 1…cp.Seq) with its inclusion proof. It keeps only the
// subtree hashes the proofs need.
func ProveRecords(ctx context.Context, log *wal.Log, cp Checkpoint, seqs []uint64) ([]Proven, error) {
	if cp.Root == nil {
		return nil, errors.New("audit: the checkpoint commits to no Merkle root (written by an older version)")
	}
	want := map[uint64]int{}
	for i, s := range seqs {
		if s == 0 || s > cp.Seq || (i > 0 && s <= seqs[i-1]) {
			return nil, fmt.Errorf("audit: record %d cannot be proven in a tree of %d records", s, cp.Seq)
		}
		want[s] = i
	}
	// The perfect subtrees each proof needs, gathered as the leaves
	// stream past: memory grows with the proofs, not with the log.
	out := make([]Proven, len(seqs))
	plans := make([]proof.Nodes, len(seqs))
	need := map[compact.NodeID][]byte{}
	for i, s := range seqs {
		var err error
		if plans[i], err = proof.Inclusion(s-1, cp.Seq); err != nil {
			return nil, err
		}
		for _, id := range plans[i].IDs {
			need[id] = nil
		}
	}
	visit := func(level uint, index uint64, h *[32]byte) {
		id := compact.NewNodeID(level, index)
		if _, ok := need[id]; ok {
			need[id] = append([]byte(nil), h[:]...)
		}
	}
	tree := newMerkleTree()
	if cp.Seq > 0 {
		rd, err := log.Reader(1)
		if err != nil {
			return nil, err
		}
		for n := uint64(0); n < cp.Seq && rd.Next(); n++ {
			if n%4096 == 0 && ctx.Err() != nil {
				return nil, ctx.Err()
			}
			tree.addVisit(LeafHash(sha256.Sum256(rd.Payload())), visit)
			if i, ok := want[rd.Index()]; ok {
				out[i] = Proven{Seq: rd.Index(), Payload: append([]byte(nil), rd.Payload()...)}
			}
		}
		if err := rd.Err(); err != nil {
			return nil, fmt.Errorf("audit: read the log: %w", err)
		}
		if tree.size() != cp.Seq {
			return nil, fmt.Errorf("audit: the log ends before the checkpoint's record %d", cp.Seq)
		}
	}
	if string(tree.root()) != string(cp.Root) {
		return nil, &ChainError{Seq: cp.Seq, Problem: "the log's Merkle root differs from what the signed checkpoint attests (the chain was rewritten)"}
	}
	for i := range out {
		hashes := make([][]byte, len(plans[i].IDs))
		for k, id := range plans[i].IDs {
			if hashes[k] = need[id]; hashes[k] == nil {
				return nil, fmt.Errorf("audit: node %v of record %d's proof was not seen", id, out[i].Seq)
			}
		}
		var err error
		if out[i].Proof, err = plans[i].Rehash(hashes, nodeHash); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// VerifyInclusion checks that the record whose canonical bytes are payload
// is record seq of the tree of size records whose root is root.
func VerifyInclusion(payload []byte, seq, size uint64, pf [][]byte, root []byte) error {
	if seq == 0 || seq > size {
		return fmt.Errorf("record %d is not in a tree of %d records", seq, size)
	}
	leaf := LeafHash(sha256.Sum256(payload))
	return proof.VerifyInclusion(rfc6962.DefaultHasher, seq-1, size, leaf[:], pf, root)
}

// Prove attests every record logged so far (Attest) and proves each of
// seqs in that checkpoint's tree (ProveRecords).
func (w *Writer) Prove(ctx context.Context, seqs []uint64) (Checkpoint, []Proven, error) {
	cp, err := w.Attest(ctx)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	proven, err := ProveRecords(ctx, w.log, cp, seqs)
	return cp, proven, err
}

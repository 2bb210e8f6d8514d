package audit

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/ostiary/ostiary/internal/audit/wal"
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

var rangeFactory = &compact.RangeFactory{Hash: nodeHash}

// merkleTree is the compact range of the tree over the whole chain: the
// roots of its perfect subtrees, at most 64 hashes.
type merkleTree struct{ rng *compact.Range }

func newMerkleTree() *merkleTree { return &merkleTree{rng: rangeFactory.NewEmptyRange(0)} }

// add appends the leaf of the record whose hash is h.
func (t *merkleTree) add(h [32]byte) {
	leaf := LeafHash(h)
	if err := t.rng.Append(leaf[:], nil); err != nil {
		panic(err) // only a range not starting at 0 can fail
	}
}

func (t *merkleTree) size() uint64 { return t.rng.End() }

// root is the tree's root hash (that of the empty string for no records).
func (t *merkleTree) root() []byte {
	if t.rng.End() == 0 {
		return rfc6962.DefaultHasher.EmptyRoot()
	}
	r, err := t.rng.GetRootHash(nil)
	if err != nil {
		panic(err)
	}
	return r
}

// loadTree builds the tree over the log's records 1…last, reading every
// frame once (SHA-256 of each payload: its record's hash).
func loadTree(log *wal.Log, last uint64) (*merkleTree, error) {
	t := newMerkleTree()
	if last == 0 {
		return t, nil
	}
	rd, err := log.Reader(1)
	if err != nil {
		return nil, err
	}
	for t.size() < last && rd.Next() {
		t.add(sha256.Sum256(rd.Payload()))
	}
	if err := rd.Err(); err != nil {
		return nil, fmt.Errorf("audit: read the log for its Merkle tree: %w", err)
	}
	if t.size() != last {
		return nil, fmt.Errorf("audit: the log ends at frame %d, not %d", t.size(), last)
	}
	return t, nil
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
// each within 1…cp.Seq) with its inclusion proof. It holds one hash per
// node of the tree: 64 bytes a record.
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
	out := make([]Proven, len(seqs))
	levels := [][][]byte{make([][]byte, 0, cp.Seq)}
	if cp.Seq > 0 {
		rd, err := log.Reader(1)
		if err != nil {
			return nil, err
		}
		for n := uint64(0); n < cp.Seq && rd.Next(); n++ {
			if n%4096 == 0 && ctx.Err() != nil {
				return nil, ctx.Err()
			}
			h := sha256.Sum256(rd.Payload())
			leaf := LeafHash(h)
			levels[0] = append(levels[0], leaf[:])
			if i, ok := want[rd.Index()]; ok {
				out[i] = Proven{Seq: rd.Index(), Payload: append([]byte(nil), rd.Payload()...)}
			}
		}
		if err := rd.Err(); err != nil {
			return nil, fmt.Errorf("audit: read the log: %w", err)
		}
		if uint64(len(levels[0])) != cp.Seq {
			return nil, fmt.Errorf("audit: the log ends before the checkpoint's record %d", cp.Seq)
		}
	}
	// Every perfect subtree: level l, index j covers leaves [j·2^l, (j+1)·2^l).
	for l := 0; len(levels[l]) > 1; l++ {
		below := levels[l]
		up := make([][]byte, len(below)/2)
		for j := range up {
			up[j] = nodeHash(below[2*j], below[2*j+1])
		}
		levels = append(levels, up)
	}
	rng, err := rangeFactory.NewRange(0, 0, nil)
	if err != nil {
		return nil, err
	}
	for _, leaf := range levels[0] {
		if err := rng.Append(leaf, nil); err != nil {
			return nil, err
		}
	}
	root := rfc6962.DefaultHasher.EmptyRoot()
	if cp.Seq > 0 {
		if root, err = rng.GetRootHash(nil); err != nil {
			return nil, err
		}
	}
	if string(root) != string(cp.Root) {
		return nil, &ChainError{Seq: cp.Seq, Problem: "the log's Merkle root differs from what the signed checkpoint attests (the chain was rewritten)"}
	}
	for i := range out {
		nodes, err := proof.Inclusion(out[i].Seq-1, cp.Seq)
		if err != nil {
			return nil, err
		}
		hashes := make([][]byte, len(nodes.IDs))
		for k, id := range nodes.IDs {
			hashes[k] = levels[id.Level][id.Index]
		}
		if out[i].Proof, err = nodes.Rehash(hashes, nodeHash); err != nil {
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

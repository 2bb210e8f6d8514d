package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/ostiary/ostiary/internal/audit/wal"
)

// Source is what Verify reads: the chain in sequence order and the stored
// checkpoints.
type Source interface {
	// ScanRecords calls fn for every record in ascending seq order, as stored.
	ScanRecords(ctx context.Context, fn func(*Record) error) error
	// Checkpoints returns every stored checkpoint in ascending seq order.
	Checkpoints(ctx context.Context) ([]Checkpoint, error)
}

// Summary describes a chain that verified.
type Summary struct {
	Records          uint64 // number of records (= head seq)
	Head             [32]byte
	Checkpoints      int    // stored checkpoints verified
	LatestCheckpoint uint64 // seq attested by the checkpoint file
	Unattested       uint64 // records after the latest checkpoint
	KeyID            string
	Indexed          uint64 // records the index holds, when it was verified too
	TornBytes        int64  // after the log's last complete batch: one being written, or cut short by a crash
	Anchored         uint64 // the newest checkpoint from an anchor that the log reaches and matches (verify --anchor)
}

func (s Summary) String() string {
	out := fmt.Sprintf("audit chain OK: %d records, head %s…, %d signed checkpoints (key %s), latest at seq %d, %d records since",
		s.Records, hex.EncodeToString(s.Head[:8]), s.Checkpoints, s.KeyID, s.LatestCheckpoint, s.Unattested)
	if s.Indexed > 0 {
		out += fmt.Sprintf("; index OK: its %d records are the log's", s.Indexed)
	}
	if s.Anchored > 0 {
		out += fmt.Sprintf("; anchored checkpoint at seq %d matches", s.Anchored)
	}
	return out
}

// ChainError names the first record at which verification failed.
type ChainError struct {
	Seq     uint64 // the first bad record's seq (or the missing one's)
	Problem string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("audit chain broken at record %d: %s", e.Seq, e.Problem)
}

// Verify re-derives every record's hash from its stored fields, checks each
// link to its predecessor and that sequence numbers run 1, 2, 3… without
// gaps, checks every stored checkpoint's signature and hash, and finally
// checks the latest checkpoint (kept outside the store) against the chain,
// which detects truncation of the tail. It reads the index (src): audit
// verify --index compares it with the log this way.
func Verify(ctx context.Context, src Source, pub ed25519.PublicKey, latest Checkpoint) (Summary, error) {
	cps, err := src.Checkpoints(ctx)
	if err != nil {
		return Summary{KeyID: KeyFingerprint(pub)}, err
	}
	c, err := newChainCheck(pub, latest, cps)
	if err != nil {
		return c.sum, err
	}
	err = src.ScanRecords(ctx, func(r *Record) error {
		return c.next(r, func() error {
			h, err := r.ComputeHash()
			if err != nil {
				return &ChainError{Seq: r.Seq, Problem: "record cannot be encoded: " + err.Error()}
			}
			if h != r.Hash {
				return &ChainError{Seq: r.Seq, Problem: "content does not match its hash (the record was modified)"}
			}
			return nil
		})
	})
	if err != nil {
		return c.sum, err
	}
	return c.end()
}

// VerifyLog verifies the chain as the log in dir holds it, reading the
// segment files without opening the log (so beside a running server, or
// on a copy): every frame's CRC and number, every record's canonical form,
// hash and link, the signed checkpoints (stored ones, if the index is at
// hand, and the latest from its file), and that the log reaches the latest.
// A batch being written while it reads is not part of what it verifies.
//
// anchors are checkpoints kept outside the data directory (verify
// --anchor): a log that does not reach one, or differs from it, is refused.
func VerifyLog(ctx context.Context, dir string, pub ed25519.PublicKey, latest Checkpoint, stored []Checkpoint, anchors ...Anchored) (Summary, error) {
	c, err := newChainCheck(pub, latest, stored)
	if err != nil {
		return c.sum, err
	}
	if err := c.anchored(pub, anchors); err != nil {
		return c.sum, err
	}
	sc, err := wal.ScanDir(dir, nil, func(index uint64, payload []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := ParsePayload(payload)
		if err != nil {
			return &ChainError{Seq: index, Problem: err.Error()}
		}
		if r.Seq != index {
			return &ChainError{Seq: index, Problem: fmt.Sprintf("log frame %d holds record %d", index, r.Seq)}
		}
		return c.next(r, nil)
	})
	if err != nil {
		return c.sum, err
	}
	sum, err := c.end()
	var ce *ChainError
	if sc.Torn > 0 && errors.As(err, &ce) {
		ce.Problem += fmt.Sprintf("; the log ends in %d bytes that are not a complete batch: damaged, or a write cut short", sc.Torn)
	}
	sum.TornBytes = sc.Torn
	return sum, err
}

// chainCheck walks a chain in seq order.
type chainCheck struct {
	sum    Summary
	attest map[uint64][]attestation
	latest Checkpoint
	prev   [32]byte
	seq    uint64
	tree   *merkleTree
	pub    ed25519.PublicKey
}

// attestation is what a signed checkpoint says of record seq: its hash,
// and the Merkle root of the records up to it (format 2).
type attestation struct {
	hash   [32]byte
	root   []byte
	anchor string // where it was anchored, if it came from an anchor
	// unchecked is an older anchored checkpoint whose signature has not
	// been checked: it is, if the log differs from it.
	unchecked *Checkpoint
}

func newChainCheck(pub ed25519.PublicKey, latest Checkpoint, cps []Checkpoint) (*chainCheck, error) {
	c := &chainCheck{sum: Summary{KeyID: KeyFingerprint(pub), Checkpoints: len(cps)}, latest: latest, tree: newMerkleTree(), pub: pub}
	if err := latest.Verify(pub); err != nil {
		// Not signed by the trusted key: the key was swapped or the file
		// forged, which is what verification exists to report.
		return c, &ChainError{Seq: latest.Seq, Problem: "checkpoint file: " + err.Error()}
	}
	for i := range cps {
		if err := cps[i].Verify(pub); err != nil {
			return c, &ChainError{Seq: cps[i].Seq, Problem: err.Error()}
		}
	}
	// Every checkpoint that attests seq n must match record n's hash.
	c.attest = map[uint64][]attestation{latest.Seq: {{hash: latest.Hash, root: latest.Root}}}
	for _, cp := range cps {
		c.attest[cp.Seq] = append(c.attest[cp.Seq], attestation{hash: cp.Hash, root: cp.Root})
	}
	return c, nil
}

// anchored adds checkpoints kept off the machine (verify --anchor): the
// chain must reach and match each, or the log is older than what was
// anchored (rolled back), rewritten, or a fork (rolled back and run on).
// Each anchor's newest must be signed by pub, checked here; an older one
// (Older) only if the log does not match it (next), so that a year of an
// anchor file's lines costs no signature checks when all is well.
func (c *chainCheck) anchored(pub ed25519.PublicKey, anchors []Anchored) error {
	for i := range anchors {
		a := &anchors[i]
		at := attestation{hash: a.Checkpoint.Hash, root: a.Checkpoint.Root, anchor: a.From}
		if a.Older {
			at.unchecked = &a.Checkpoint
		} else if err := a.Checkpoint.Verify(pub); err != nil {
			return &ChainError{Seq: a.Checkpoint.Seq, Problem: "anchored checkpoint from " + a.From + ": " + err.Error()}
		}
		if at.root != nil && len(at.root) != len(at.hash) {
			return &ChainError{Seq: a.Checkpoint.Seq, Problem: "anchored checkpoint from " + a.From + " has a malformed Merkle root"}
		}
		c.attest[a.Checkpoint.Seq] = append(c.attest[a.Checkpoint.Seq], at)
	}
	return nil
}

// Anchored is a checkpoint as an anchor (a file or a witness outside the
// data directory) holds it.
type Anchored struct {
	Checkpoint Checkpoint
	From       string // the anchor it came from, for messages
	// Older marks a checkpoint below its anchor's newest (a file holds
	// every one it was given): the log must match it as well, and its
	// signature is checked only if it does not.
	Older bool
}

// next checks r's place in the chain; hashed, if set, checks that r's Hash
// is that of its content (after its sequence and link: a record moved is
// reported as such, not as modified).
func (c *chainCheck) next(r *Record, hashed func() error) error {
	want := c.seq + 1
	switch {
	case r.Seq > want:
		return &ChainError{Seq: want, Problem: fmt.Sprintf("record missing (the next stored record is %d)", r.Seq)}
	case r.Seq < want:
		return &ChainError{Seq: r.Seq, Problem: "record out of order or duplicated"}
	}
	if r.Prev != c.prev {
		return &ChainError{Seq: r.Seq, Problem: "link to the previous record does not match (a record was removed, reordered or altered)"}
	}
	if hashed != nil {
		if err := hashed(); err != nil {
			return err
		}
	}
	c.tree.add(r.Hash)
	for _, a := range c.attest[r.Seq] {
		what, why := "a signed checkpoint", "the chain was rewritten"
		if a.anchor != "" {
			what = "the checkpoint anchored at " + a.anchor
			why = "the chain was rewritten, or the data directory was rolled back and run on from the older state: a fork of the anchored history"
		}
		differs := a.hash != r.Hash
		problem := "differs from what " + what + " attests (" + why + ")"
		if !differs && a.root != nil && string(a.root) != string(c.tree.root()) {
			differs, problem = true, "the Merkle root of the records up to here differs from what "+what+" attests ("+why+")"
		}
		if differs && a.unchecked != nil {
			if err := a.unchecked.Verify(c.pub); err != nil {
				problem = what + " is not the trusted key's: " + err.Error()
			}
		}
		if differs {
			return &ChainError{Seq: r.Seq, Problem: problem}
		}
	}
	c.prev, c.seq = r.Hash, r.Seq
	return nil
}

func (c *chainCheck) end() (Summary, error) {
	var top uint64
	anchor := ""
	for s, as := range c.attest {
		if s > top {
			top, anchor = s, ""
			for _, a := range as {
				if a.anchor != "" {
					anchor = a.anchor
				}
			}
		}
	}
	if top > c.seq && anchor != "" {
		return c.sum, &ChainError{Seq: c.seq + 1, Problem: fmt.Sprintf("the log ends at record %d but the checkpoint anchored at %s attests record %d: "+
			"this log is older than one already anchored (the data directory was rolled back, or its tail cut)", c.seq, anchor, top)}
	}
	if top > c.seq {
		return c.sum, &ChainError{Seq: c.seq + 1, Problem: fmt.Sprintf("chain ends at record %d but a signed checkpoint attests record %d (the tail was truncated)", c.seq, top)}
	}
	for s, as := range c.attest {
		for _, a := range as {
			if a.anchor != "" {
				c.sum.Anchored = max(c.sum.Anchored, s)
			}
		}
	}
	c.sum.Records, c.sum.Head = c.seq, c.prev
	c.sum.LatestCheckpoint, c.sum.Unattested = c.latest.Seq, c.seq-c.latest.Seq
	return c.sum, nil
}

// IsChainError reports whether err is a verification failure (as opposed to
// an I/O error reading the store).
func IsChainError(err error) bool {
	var ce *ChainError
	var de *wal.CorruptError
	return errors.As(err, &ce) || errors.As(err, &de)
}

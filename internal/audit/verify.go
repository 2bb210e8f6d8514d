package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
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
}

func (s Summary) String() string {
	return fmt.Sprintf("audit chain OK: %d records, head %s…, %d signed checkpoints (key %s), latest at seq %d, %d records since",
		s.Records, hex.EncodeToString(s.Head[:8]), s.Checkpoints, s.KeyID, s.LatestCheckpoint, s.Unattested)
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
// which detects truncation of the tail.
func Verify(ctx context.Context, src Source, pub ed25519.PublicKey, latest Checkpoint) (Summary, error) {
	sum := Summary{KeyID: KeyFingerprint(pub)}
	if err := latest.Verify(pub); err != nil {
		// Not signed by the trusted key: the key was swapped or the file
		// forged, which is what verification exists to report.
		return sum, &ChainError{Seq: latest.Seq, Problem: "checkpoint file: " + err.Error()}
	}
	cps, err := src.Checkpoints(ctx)
	if err != nil {
		return sum, err
	}
	for i := range cps {
		if err := cps[i].Verify(pub); err != nil {
			return sum, &ChainError{Seq: cps[i].Seq, Problem: err.Error()}
		}
	}
	// Every checkpoint that attests seq n must match record n's hash.
	attest := map[uint64][][32]byte{latest.Seq: {latest.Hash}}
	for _, c := range cps {
		attest[c.Seq] = append(attest[c.Seq], c.Hash)
	}

	var prev [32]byte
	var seq uint64
	err = src.ScanRecords(ctx, func(r *Record) error {
		want := seq + 1
		switch {
		case r.Seq > want:
			return &ChainError{Seq: want, Problem: fmt.Sprintf("record missing (the next stored record is %d)", r.Seq)}
		case r.Seq < want:
			return &ChainError{Seq: r.Seq, Problem: "record out of order or duplicated"}
		}
		if r.Prev != prev {
			return &ChainError{Seq: r.Seq, Problem: "link to the previous record does not match (a record was removed, reordered or altered)"}
		}
		h, err := r.ComputeHash()
		if err != nil {
			return &ChainError{Seq: r.Seq, Problem: "record cannot be encoded: " + err.Error()}
		}
		if h != r.Hash {
			return &ChainError{Seq: r.Seq, Problem: "content does not match its hash (the record was modified)"}
		}
		for _, a := range attest[r.Seq] {
			if a != h {
				return &ChainError{Seq: r.Seq, Problem: "differs from what a signed checkpoint attests (the chain was rewritten)"}
			}
		}
		prev, seq = h, r.Seq
		return nil
	})
	if err != nil {
		return sum, err
	}
	var top uint64
	for s := range attest {
		top = max(top, s)
	}
	if top > seq {
		return sum, &ChainError{Seq: seq + 1, Problem: fmt.Sprintf("chain ends at record %d but a signed checkpoint attests record %d (the tail was truncated)", seq, top)}
	}
	sum.Records, sum.Head, sum.Checkpoints = seq, prev, len(cps)
	sum.LatestCheckpoint, sum.Unattested = latest.Seq, seq-latest.Seq
	return sum, nil
}

// IsChainError reports whether err is a verification failure (as opposed to
// an I/O error reading the store).
func IsChainError(err error) bool {
	var ce *ChainError
	return errors.As(err, &ce)
}

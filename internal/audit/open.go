package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/ostiary/ostiary/internal/audit/wal"
)

// EventChangeNotApplied is recorded at start-up for a change whose record
// reached the log but whose store transaction never committed (a crash
// between the two): the change did not happen.
const EventChangeNotApplied = "change-not-applied"

// ErrIndexMismatch refuses a start whose database index is not that of
// its log.
var ErrIndexMismatch = errors.New("audit: the database's audit index does not match the audit log")

// headOf returns the seq and hash of the log's last record.
func headOf(log *wal.Log) (uint64, [32]byte, error) {
	last := log.Last()
	if last == 0 {
		return 0, [32]byte{}, nil
	}
	r, err := recordAt(log, last)
	if err != nil {
		return 0, [32]byte{}, err
	}
	return r.Seq, r.Hash, nil
}

// recordAt reads record seq from the log; frame index and seq are one.
func recordAt(log *wal.Log, seq uint64) (*Record, error) {
	rd, err := log.Reader(seq)
	if err != nil {
		return nil, fmt.Errorf("audit: read record %d: %w", seq, err)
	}
	if !rd.Next() {
		if err := rd.Err(); err != nil {
			return nil, fmt.Errorf("audit: read record %d: %w", seq, err)
		}
		return nil, fmt.Errorf("audit: record %d is not in the log", seq)
	}
	r, err := ParsePayload(rd.Payload())
	if err != nil {
		return nil, fmt.Errorf("audit: log frame %d: %w", seq, err)
	}
	if r.Seq != seq {
		return nil, fmt.Errorf("audit: log frame %d holds record %d", seq, r.Seq)
	}
	return r, nil
}

// migrate copies the chain of a database from before the log into an
// empty log, once, checking every link and hash on the way: a chain that
// does not verify is not carried over.
func (w *Writer) migrate(ctx context.Context) error {
	if w.log.Last() > 0 {
		return nil
	}
	head, _, err := w.cfg.Store.AuditHead(ctx)
	if err != nil {
		return fmt.Errorf("audit: read the database's chain head: %w", err)
	}
	if head == 0 {
		return nil
	}
	if !w.cfg.FromDatabase {
		return fmt.Errorf("audit: the audit log is empty but the database's index holds %d records: the log was deleted; nothing is served without it: restore the log from a backup", head)
	}
	limit := int(w.log.MaxBatchBytes())
	var batch [][]byte
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := w.log.AppendBatch(batch)
		batch, size = batch[:0], 0
		return err
	}
	var prev [32]byte
	var seq uint64
	err = w.cfg.Store.ScanRecords(ctx, func(r *Record) error {
		if r.Seq != seq+1 || r.Prev != prev {
			return &ChainError{Seq: seq + 1, Problem: "the database's chain has a gap or a broken link"}
		}
		b, err := r.Canonical()
		if err != nil {
			return &ChainError{Seq: r.Seq, Problem: "record cannot be encoded: " + err.Error()}
		}
		if r2, err := ParsePayload(b); err != nil || r2.Hash != r.Hash {
			return &ChainError{Seq: r.Seq, Problem: "content does not match its hash (the record was modified)"}
		}
		if size+wal.FrameSize(len(b)) > limit || len(batch) == 4096 {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, b)
		size += wal.FrameSize(len(b))
		seq, prev = r.Seq, r.Hash
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("audit: copy the database's chain into the log: %w; nothing is served from a chain that does not verify: run 'ostiary audit verify --index'", err)
	}
	w.cfg.Logger.Info("audit chain copied from the database into the log", "records", seq)
	return nil
}

// catchUp brings the index up to the log, and returns the records of
// changes that are in the log but were never applied: flagged StoreChange,
// without the index row their transaction would have written, and not yet
// cited by a change-not-applied record. The index stops short of the first
// of them until that citation is logged (reconcile), so that a crash in
// between finds them again.
func (w *Writer) catchUp(ctx context.Context) (open []*Record, indexed uint64, err error) {
	through, reconciled, err := w.cfg.Store.IndexedThrough(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("audit: read the index's position: %w", err)
	}
	top, _, err := w.cfg.Store.AuditHead(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("audit: read the index's head: %w", err)
	}
	if through > w.seq || top > w.seq {
		return nil, 0, fmt.Errorf("audit: the index holds records up to %d but the log ends at %d: the log was truncated or replaced; run 'ostiary audit verify' "+
			"(if this follows a first start of a data directory from before the log that did not finish, remove its audit directory and start again: the copy is made anew)",
			max(through, top), w.seq)
	}
	// The index must be this log's: a database restored from another
	// installation, or from before the log was replaced, is not.
	if through > 0 {
		h, err := w.cfg.Store.AuditHashAt(ctx, through)
		r, lerr := recordAt(w.log, through)
		if err != nil || lerr != nil || h != r.Hash {
			return nil, 0, fmt.Errorf("%w at record %d: the database or the log was replaced or restored from elsewhere, or the index altered; nothing is served from a mismatched pair: run 'ostiary audit verify --index', and 'ostiary audit reindex' if the log verifies", ErrIndexMismatch, through)
		}
	}
	if through == w.seq {
		return nil, through, nil
	}
	rd, err := w.log.Reader(through + 1)
	if err != nil {
		return nil, 0, err
	}
	var recs, unapplied []*Record
	cited := map[uint64]bool{}
	for rd.Next() {
		r, err := ParsePayload(rd.Payload())
		if err != nil {
			return nil, 0, fmt.Errorf("audit: log frame %d: %w", rd.Index(), err)
		}
		if r.Seq != rd.Index() {
			return nil, 0, fmt.Errorf("audit: log frame %d holds record %d", rd.Index(), r.Seq)
		}
		recs = append(recs, r)
		if r.Event == EventChangeNotApplied {
			if s, ok := detailSeq(r.Detail, "record_seq"); ok {
				cited[s] = true
			}
		}
		if r.Detail[StoreChange] == true && r.Seq > reconciled {
			ok, err := w.cfg.Store.AuditIndexed(ctx, r.Seq)
			if err != nil {
				return nil, 0, fmt.Errorf("audit: read the index: %w", err)
			}
			if !ok {
				unapplied = append(unapplied, r)
			}
		}
	}
	if err := rd.Err(); err != nil {
		return nil, 0, err
	}
	for _, r := range unapplied {
		if !cited[r.Seq] {
			open = append(open, r)
		}
	}
	upTo := len(recs)
	if len(open) > 0 {
		upTo = int(open[0].Seq - through - 1)
	}
	for i := 0; i < upTo; i += indexChunk {
		chunk := recs[i:min(upTo, i+indexChunk)]
		if err := w.cfg.Store.IndexRecords(ctx, chunk, chunk[len(chunk)-1].Seq); err != nil {
			return nil, 0, fmt.Errorf("audit: index the log: %w", err)
		}
	}
	return open, through + uint64(upTo), nil
}

// reconcile logs, for each change in open, that it was not applied.
func (w *Writer) reconcile(ctx context.Context, open []*Record) error {
	for _, r := range open {
		rec := Record{Event: EventChangeNotApplied, Outcome: Failed, Reason: "not-applied", Actor: r.Actor, KeyID: r.KeyID,
			RequestID: r.RequestID, Remote: r.Remote, Target: r.Target,
			Detail: map[string]any{"record_seq": r.Seq, "event": r.Event}}
		if _, err := w.Write(ctx, Entry{Record: rec}); err != nil {
			return fmt.Errorf("audit: record that change %d was not applied: %w", r.Seq, err)
		}
		w.cfg.Logger.Warn("a change was logged but not applied before a crash; recorded as not applied", "seq", r.Seq, "event", r.Event, "target", r.Target)
	}
	return nil
}

// detailSeq reads a seq stored in a record's detail (a number once the
// record is read back).
func detailSeq(d map[string]any, key string) (uint64, bool) {
	var s uint64
	switch v := d[key].(type) {
	case uint64:
		s = v
	case fmt.Stringer:
		if _, err := fmt.Sscan(v.String(), &s); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	return s, true
}

// CheckExtends refuses to go on from a log that is older than, or not an
// extension of, cp, a checkpoint held outside the data directory (an
// anchor): a data directory rolled back, or rolled back and run on (a
// fork). cp must be pub's.
func CheckExtends(log *wal.Log, pub ed25519.PublicKey, cp Checkpoint) error {
	if err := cp.Verify(pub); err != nil {
		return fmt.Errorf("audit: the anchored checkpoint: %w", err)
	}
	if cp.Seq == 0 {
		return nil
	}
	if last := log.Last(); last < cp.Seq {
		return fmt.Errorf("audit: the log ends at record %d but an anchored checkpoint attests record %d: "+
			"this data directory is older than one already anchored (rolled back, or its tail cut); run 'ostiary audit verify --anchor'", last, cp.Seq)
	}
	r, err := recordAt(log, cp.Seq)
	if err != nil {
		return err
	}
	if r.Hash != cp.Hash {
		return fmt.Errorf("audit: record %d differs from the anchored checkpoint: this data directory's history is not the anchored one "+
			"(rolled back and run on from the older state, or rewritten); run 'ostiary audit verify --anchor'", cp.Seq)
	}
	return nil
}

package audit

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/ostiary/ostiary/internal/audit/wal"
	"github.com/ostiary/ostiary/internal/fault"
)

// MaxRecordBytes bounds one record's canonical encoding; a record whose
// detail would make it larger is logged with the detail dropped.
const MaxRecordBytes = 256 << 10

// StoreChange is the detail member that marks a record of a change applied
// in the store with the record's index row (see Entry).
const StoreChange = "store_change"

// sealed is one record of a batch, ready for the log.
type sealed struct {
	rec      Record
	payload  []byte
	applyErr error
}

// commit logs one batch. A batch without changes is one append to the log
// (one write, one fdatasync); a batch with changes applies them in one
// store transaction that commits only after the log append succeeded.
func (w *Writer) commit(batch []*job) {
	if len(batch) == 0 {
		return
	}
	if se := w.stop.Load(); se != nil {
		w.fail(batch, se)
		return
	}
	w.active = true
	start := time.Now()
	w.busy()
	defer w.idle()
	// Store files deleted or replaced under the server: fail closed at
	// once, before anything more is logged (an fstat at most every 10 ms).
	if ferr := w.cfg.Store.StorageFault(); ferr != nil {
		w.refuse(batch, ferr)
		return
	}
	if lerr := w.checkLog(); lerr != nil {
		w.refuse(batch, lerr)
		return
	}
	changes := false
	for _, j := range batch {
		changes = changes || j.entry.Apply != nil
	}
	out := make([]sealed, len(batch))
	var err error
	if changes {
		err = w.commitChanges(batch, out)
	} else {
		seq, prev := w.seq, w.prev
		for i, j := range batch {
			out[i] = w.seal(j.entry.Record, seq+1, prev)
			seq, prev = out[i].rec.Seq, out[i].rec.Hash
		}
		err = w.appendLog(out)
	}
	if err != nil {
		w.refuse(batch, err)
		return
	}
	// A batch whose changes were committed to store files deleted or
	// replaced meanwhile is not durable where anyone will look.
	if changes {
		if ferr := w.cfg.Store.StorageFault(); ferr != nil {
			w.refuse(batch, ferr)
			return
		}
	}
	if changes { // the store answered: whatever troubled it has passed
		w.note(nil, 0)
	}
	recs := make([]*Record, len(out))
	for i := range out {
		recs[i] = &out[i].rec
	}
	w.idx.add(recs)
	w.publish(recs)
	for i, j := range batch {
		j.done <- result{out[i].rec, out[i].applyErr}
	}
	if w.cfg.OnBatch != nil {
		w.cfg.OnBatch(len(batch), time.Since(start))
	}
}

// checkLog reports, as a storage failure, that the log's segment was
// deleted, renamed or replaced. Every batch looks, before it is logged: a
// stat of the path and an fstat, a few µs.
func (w *Writer) checkLog() error {
	if err := w.log.Check(); err != nil {
		return &StorageError{Cause: "audit log file deleted, renamed or replaced", Err: err}
	}
	return nil
}

// appendLog appends the sealed records to the log, in as few appends as
// fit in a segment, and moves the head. Any failure of the log is a
// storage failure: the writer stops.
func (w *Writer) appendLog(out []sealed) error {
	limit := int(w.log.MaxBatchBytes())
	for len(out) > 0 {
		n, size := 0, 0
		for n < len(out) && (n == 0 || size+wal.FrameSize(len(out[n].payload)) <= limit) {
			size += wal.FrameSize(len(out[n].payload))
			n++
		}
		payloads := make([][]byte, n)
		for i := range out[:n] {
			payloads[i] = out[i].payload
		}
		if err := w.log.AppendBatch(payloads); err != nil {
			return &StorageError{Cause: "the audit log cannot be written", Err: err}
		}
		w.seq, w.prev = out[n-1].rec.Seq, out[n-1].rec.Hash
		for i := range out[:n] {
			w.tree.add(out[i].rec.Hash)
		}
		out = out[n:]
	}
	return nil
}

// commitChanges seals the batch inside one store transaction, applying
// each entry's change in a savepoint with its record's index row, then
// appends the records to the log and only then lets the transaction
// commit. If the log append fails, nothing is committed. If the commit
// fails after the append, the records of changes that did not happen are
// in the log: the writer stops, and the next start records that they were
// not applied (reconcile).
func (w *Writer) commitChanges(batch []*job, out []sealed) error {
	ctx, cancel := context.WithDeadline(context.Background(), w.deadline(batch[0]))
	defer cancel()
	logged := false
	err := w.cfg.Store.AuditBatch(ctx, func(tx Tx) error {
		seq, prev := w.seq, w.prev
		for i, j := range batch {
			s, err := w.sealChange(context.Background(), tx, j.entry, seq+1, prev)
			if err != nil {
				return err
			}
			out[i] = s
			seq, prev = s.rec.Seq, s.rec.Hash
		}
		if err := w.appendLog(out); err != nil {
			return err
		}
		logged = true
		return nil
	})
	if err != nil && logged {
		var se *StorageError
		if !errors.As(err, &se) {
			se = &StorageError{Cause: "the database did not commit changes whose records are logged", Err: err}
		}
		return se
	}
	return err
}

// seal numbers rec and encodes it for the log. A record that cannot be
// encoded, or would be too large, is logged with its detail dropped: the
// event itself is never lost.
func (w *Writer) seal(rec Record, seq uint64, prev [32]byte) sealed {
	rec.Seq, rec.Prev = seq, prev
	b, err := rec.appendCanonical(w.buf[:0])
	if err != nil || len(b) > MaxRecordBytes {
		reason := "not encodable"
		if err == nil {
			reason = "too large"
		}
		dropped := map[string]any{"detail_dropped": reason}
		if rec.Detail[StoreChange] == true {
			dropped[StoreChange] = true // the marker outlives the detail
		}
		rec.Detail = dropped
		if b, err = rec.appendCanonical(w.buf[:0]); err != nil {
			panic(fmt.Sprintf("audit: a record with plain strings cannot be encoded: %v", err)) // sanitize made them valid
		}
	}
	w.buf = b
	rec.Hash = sha256.Sum256(b)
	return sealed{rec: rec, payload: append([]byte(nil), b...)}
}

// sealChange seals one entry of a batch with changes. A change is applied
// in a savepoint together with its record's index row; if it fails, the
// savepoint is undone and the failure is logged in its place. It returns a
// transaction error (fatal to the batch) apart from the entry's own.
func (w *Writer) sealChange(ctx context.Context, tx Tx, e Entry, seq uint64, prev [32]byte) (sealed, error) {
	if e.Apply == nil {
		return w.seal(e.Record, seq, prev), nil
	}
	var applyErr error
	var s sealed
	err := tx.Step(ctx, func() error {
		rec := e.Record
		rec.Seq, rec.Prev = seq, prev
		if err := e.Apply(ctx, tx, &rec); err != nil {
			applyErr = err
			return err
		}
		rec.Detail = maps.Clone(rec.Detail)
		if rec.Detail == nil {
			rec.Detail = map[string]any{}
		}
		rec.Detail[StoreChange] = true
		s = w.seal(rec, seq, prev)
		return tx.AppendRecord(ctx, &s.rec)
	})
	if err == nil {
		return s, nil
	}
	var se *StorageError
	if errors.Is(err, ErrTxBroken) || errors.As(err, &se) {
		return sealed{}, err // not this entry's failure: the store's
	}
	if applyErr == nil {
		applyErr = fault.Wrap(fault.Internal, "audit append", err)
	}
	// The step was undone; log the failure in its place.
	rec := e.Record
	rec.Outcome, rec.Reason = OutcomeOf(applyErr)
	s = w.seal(rec, seq, prev)
	s.applyErr = applyErr
	return s, nil
}

// refuse answers batch with err, which stops the writer if it is a
// storage failure; other failures are logged batch by batch.
func (w *Writer) refuse(batch []*job, err error) {
	if !w.note(err, len(batch)) && w.stop.Load() == nil {
		w.cfg.Logger.Error("audit batch not committed; actions refused", "records", len(batch), "err", err)
	}
	w.fail(batch, err)
}

// fail answers every waiter of batch that nothing of it was stored.
func (w *Writer) fail(batch []*job, err error) {
	for _, j := range batch {
		j.done <- result{err: &fault.Error{Kind: fault.Unavailable, Op: "audit write", Err: err,
			Message: "the audit log cannot be written; the action was not performed"}}
	}
}

func (w *Writer) checkpoint() {
	if w.stop.Load() != nil {
		return // nothing more is attested once the log has failed
	}
	w.busy()
	defer w.idle()
	if w.tree.size() != w.seq {
		panic(fmt.Sprintf("audit: the Merkle tree holds %d records, the chain %d", w.tree.size(), w.seq))
	}
	cp := Checkpoint{Seq: w.seq, Hash: w.prev, Root: w.tree.root(), Time: w.cfg.Now()}
	cp.Sign(w.cfg.Signer)
	if err := WriteCheckpointFile(w.cfg.CheckpointPath, cp); err != nil {
		w.cfg.Logger.Error("audit checkpoint file not written", "seq", cp.Seq, "path", w.cfg.CheckpointPath, "err", err)
		return
	}
	w.cpSeq = cp.Seq
	// The store's copy is the indexer's to save, once the index reaches
	// it: the writer never waits on the store for records that do not
	// change it (a store locked elsewhere must not hold tool calls).
	w.idx.addCheckpoint(cp)
	w.latest.Store(&cp)
	if err := w.saveTree(); err != nil {
		w.cfg.Logger.Warn("audit Merkle tree file not written; the next start reads the whole log", "err", err)
	}
	if w.cfg.OnCheckpoint != nil {
		w.cfg.OnCheckpoint(cp)
	}
}

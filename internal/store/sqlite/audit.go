package sqlite

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"database/sql"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
)

func (s *Store) AuditHead(ctx context.Context) (uint64, [32]byte, error) {
	ctx, cancel := bounded(ctx, s.timeout)
	defer cancel()
	var seq uint64
	var h []byte
	db := s.w
	if db == nil { // opened read-only (audit verify)
		db = s.r
	}
	err := db.QueryRowContext(ctx, "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1").Scan(&seq, &h)
	if err == sql.ErrNoRows {
		return 0, [32]byte{}, nil
	}
	if err != nil {
		return 0, [32]byte{}, classify("audit head", err)
	}
	return seq, hash32(h), nil
}

func (s *Store) AuditHashAt(ctx context.Context, seq uint64) ([32]byte, error) {
	var h []byte
	err := s.r.QueryRowContext(ctx, "SELECT hash FROM audit_records WHERE seq = ?", seq).Scan(&h)
	if err != nil {
		return [32]byte{}, classify("audit record", err)
	}
	return hash32(h), nil
}

func hash32(b []byte) [32]byte {
	var h [32]byte
	copy(h[:], b)
	return h
}

// AuditBatch runs fn in one BEGIN IMMEDIATE transaction; with WAL and
// synchronous=FULL the commit is durable when it returns. Its waits (for
// the connection, for the lock) end at ctx's deadline, and in any case
// within the store's timeout; once begun, the batch is not cut short.
// After a storage failure it refuses at once.
func (s *Store) AuditBatch(ctx context.Context, fn func(audit.Tx) error) error {
	if err := s.writable("audit batch"); err != nil {
		return err
	}
	wctx, wcancel := bounded(ctx, s.timeout)
	defer wcancel()
	st, err := s.appendStmt(wctx) // before the transaction: the pool has one connection
	if err != nil {
		return s.wrote(err)
	}
	tx, done, err := s.begin(wctx)
	if err != nil {
		return s.wrote(classify("begin", err))
	}
	defer done()
	t := &Tx{queries: queries{q: tx}, tx: tx, insert: tx.StmtContext(context.WithoutCancel(ctx), st)}
	if err := fn(t); err != nil {
		tx.Rollback()
		return s.wrote(err)
	}
	return s.wrote(classify("commit", tx.Commit()))
}

const insertRecord = `INSERT INTO audit_records
	(seq, time, event, outcome, reason, actor, key_id, request_id, remote, target, detail, prev, hash)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// appendStmt returns the audit insert prepared on the write connection:
// batches reuse it instead of preparing their own.
func (s *Store) appendStmt(ctx context.Context) (*sql.Stmt, error) {
	s.appendMu.Lock()
	defer s.appendMu.Unlock()
	if s.appendSt == nil {
		st, err := s.w.PrepareContext(ctx, insertRecord)
		if err != nil {
			return nil, classify("prepare audit insert", err)
		}
		s.appendSt = st
	}
	return s.appendSt, nil
}

func (t *Tx) AppendRecord(ctx context.Context, r *audit.Record) error {
	detail, err := r.DetailJSON()
	if err != nil {
		return err
	}
	if t.insert == nil {
		if t.insert, err = t.tx.PrepareContext(ctx, insertRecord); err != nil {
			return classify("append audit record", err)
		}
	}
	_, err = t.insert.ExecContext(ctx,
		int64(r.Seq), r.Time.UnixMicro(), r.Event, string(r.Outcome), r.Reason, r.Actor, r.KeyID, r.RequestID,
		r.Remote, r.Target, detail, r.Prev[:], r.Hash[:])
	return classify("append audit record", err)
}

// SaveCheckpoint stores c. The sig column holds the signature followed,
// for a checkpoint with a Merkle root (format 2), by the root: 64 or 96
// bytes, so rows from before roots read as they were, with no migration.
func (s *Store) SaveCheckpoint(ctx context.Context, c audit.Checkpoint) error {
	if err := s.writable("save checkpoint"); err != nil {
		return err
	}
	ctx, cancel := bounded(ctx, s.timeout)
	defer cancel()
	sig := append(append([]byte(nil), c.Sig...), c.Root...)
	_, err := s.w.ExecContext(ctx, `INSERT INTO audit_checkpoints (seq, hash, time, key_id, sig) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (seq) DO NOTHING`, int64(c.Seq), c.Hash[:], c.Time.UnixMicro(), c.KeyID, sig)
	return s.wrote(classify("save checkpoint", err))
}

func (s *Store) Checkpoints(ctx context.Context) ([]audit.Checkpoint, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT seq, hash, time, key_id, sig FROM audit_checkpoints ORDER BY seq")
	if err != nil {
		return nil, classify("checkpoints", err)
	}
	defer rows.Close()
	var out []audit.Checkpoint
	for rows.Next() {
		var c audit.Checkpoint
		var h []byte
		var t int64
		if err := rows.Scan(&c.Seq, &h, &t, &c.KeyID, &c.Sig); err != nil {
			return nil, classify("checkpoints", err)
		}
		c.Hash, c.Time = hash32(h), time.UnixMicro(t).UTC()
		if len(c.Sig) == ed25519.SignatureSize+sha256.Size {
			c.Sig, c.Root = c.Sig[:ed25519.SignatureSize], c.Sig[ed25519.SignatureSize:]
		}
		out = append(out, c)
	}
	return out, classify("checkpoints", rows.Err())
}

const recordColumns = "seq, time, event, outcome, reason, actor, key_id, request_id, remote, target, detail, prev, hash"

func scanRecord(rows *sql.Rows) (*audit.Record, error) {
	var r audit.Record
	var t int64
	var outcome, detail string
	var prev, h []byte
	if err := rows.Scan(&r.Seq, &t, &r.Event, &outcome, &r.Reason, &r.Actor, &r.KeyID, &r.RequestID, &r.Remote,
		&r.Target, &detail, &prev, &h); err != nil {
		return nil, err
	}
	r.Time, r.Outcome, r.Prev, r.Hash = time.UnixMicro(t).UTC(), audit.Outcome(outcome), hash32(prev), hash32(h)
	var err error
	if r.Detail, err = audit.ParseDetail(detail); err != nil {
		// Keep the record: verification will report that it does not hash.
		r.Detail = map[string]any{"unparsable_detail": detail}
	}
	return &r, nil
}

// ScanRecords streams the whole chain in seq order.
func (s *Store) ScanRecords(ctx context.Context, fn func(*audit.Record) error) error {
	rows, err := s.r.QueryContext(ctx, "SELECT "+recordColumns+" FROM audit_records ORDER BY seq")
	if err != nil {
		return classify("scan audit", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return classify("scan audit", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return classify("scan audit", rows.Err())
}

// AuditAfter streams, in seq order, the records after seq whose event is
// one of events. The (event, seq) index serves it: the cost is the records
// it returns, not the length of the log.
func (s *Store) AuditAfter(ctx context.Context, seq uint64, events []string, fn func(*audit.Record) error) error {
	if len(events) == 0 {
		return nil
	}
	args := []any{int64(seq)}
	for _, e := range events {
		args = append(args, e)
	}
	rows, err := s.r.QueryContext(ctx, "SELECT "+recordColumns+" FROM audit_records WHERE seq > ? AND event IN (?"+
		strings.Repeat(", ?", len(events)-1)+") ORDER BY seq", args...)
	if err != nil {
		return classify("audit after", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return classify("audit after", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return classify("audit after", rows.Err())
}

// QueryAudit returns records matching q, newest first.
func (s *Store) QueryAudit(ctx context.Context, q audit.Query) ([]audit.Record, error) {
	var where []string
	var args []any
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if q.Actor != "" {
		add("actor = ?", q.Actor)
	}
	if q.Event != "" {
		add("event = ?", q.Event)
	}
	if q.Outcome != "" {
		add("outcome = ?", string(q.Outcome))
	}
	if q.RequestID != "" {
		add("request_id = ?", q.RequestID)
	}
	if q.Target != "" {
		add("target = ?", q.Target)
	}
	if !q.Since.IsZero() {
		add("time >= ?", q.Since.UnixMicro())
	}
	if !q.Until.IsZero() {
		add("time < ?", q.Until.UnixMicro())
	}
	if q.BeforeSeq > 0 {
		add("seq < ?", int64(q.BeforeSeq))
	}
	if q.Contains != "" {
		where = append(where, "(instr(detail, ?) > 0 OR instr(target, ?) > 0 OR instr(reason, ?) > 0)")
		args = append(args, q.Contains, q.Contains, q.Contains)
	}
	sqlText := "SELECT " + recordColumns + " FROM audit_records"
	if len(where) > 0 {
		sqlText += " WHERE " + strings.Join(where, " AND ")
	}
	sqlText += " ORDER BY seq DESC LIMIT ?"
	args = append(args, q.Limit)
	rows, err := s.r.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return nil, classify("query audit", err)
	}
	defer rows.Close()
	out := []audit.Record{}
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, classify("query audit", err)
		}
		out = append(out, *r)
	}
	return out, classify("query audit", rows.Err())
}

package vault

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"slices"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
)

// EventRekey records each step of a data-key rotation: its start, each
// batch of values re-encrypted, and the old key's retirement.
const EventRekey = "vault-rekey"

// RekeyStatus is where a data-key rotation stands.
type RekeyStatus struct {
	DataKey   int    `json:"data_key"`           // the key values are sealed under from now on
	Retiring  []int  `json:"retiring,omitempty"` // the keys being retired (none: no rotation under way)
	Remaining int    `json:"remaining"`          // stored versions still sealed under them
	Running   bool   `json:"running"`            // re-encrypting now, on this server
	LastError string `json:"last_error,omitempty"`
}

// worker re-encrypts the values in the background.
type worker struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error // why it stopped, once done is closed
}

// SetRekeyBatch sets how many values Rekey re-encrypts per transaction
// (default 200).
func (v *Vault) SetRekeyBatch(n int) {
	v.mu.Lock()
	v.batch = max(1, n)
	v.mu.Unlock()
}

// Rekey rotates the data key (admin only): a new data key is made and
// stored (wrapped by this server's master keys) in the transaction of its
// record, and from then on every new value is sealed under it; every
// stored value, old versions too, is then re-encrypted under it in
// batches, each in the transaction of its record, while the server keeps
// serving; when none is left under the old key, its wrappings are deleted
// (retired), on record. Every step is a transaction, so at every instant
// each value is sealed under exactly one key, which the store names with
// it, and a crash at any point leaves a rotation that Rekey (or the next
// start, ResumeRekey) takes up where it stopped. Called while one is under
// way, Rekey resumes it if it is not running and reports where it stands.
func (v *Vault) Rekey(ctx context.Context, p *authn.Principal) (RekeyStatus, error) {
	rec := p.Record(EventRekey, "vault")
	if !p.Allows(authz.Admin, authz.All) {
		return RekeyStatus{}, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Forbidden, "permission denied: rotating the data key needs the admin grant"))
	}
	if len(v.keyIDs()) > 1 {
		v.ResumeRekey()
		return v.RekeyStatus(ctx)
	}
	v.mu.Lock()
	foreign, current, closed := v.foreign, v.current, v.closed
	v.mu.Unlock()
	switch {
	case closed || current == 0:
		return RekeyStatus{}, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Unavailable, "the vault is not open"))
	case foreign > 0:
		return RekeyStatus{}, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Conflict,
			"a master-key rotation is under way (%d stored wrapping(s) do not open with this server's master key): finish it first, and restart this server with the master key that remains", foreign))
	}
	id := current + 1
	key := make([]byte, 32)
	rand.Read(key)
	ws, err := v.wrapAll(id, key)
	if err != nil {
		return RekeyStatus{}, audit.Refuse(ctx, v.audit, rec, fault.Wrap(fault.Unavailable, "rekey", err))
	}
	v.mu.Lock()
	search := v.search
	v.mu.Unlock()
	rec.Detail = map[string]any{"phase": "start", "data_key": id, "retiring": current}
	_, err = v.audit.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, r *audit.Record) error {
		ts, ok := tx.(TxStore)
		if !ok {
			return fmt.Errorf("vault: store transaction %T lacks vault operations", tx)
		}
		stored, err := ts.WrappedDataKeys(ctx)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(stored, func(w WrappedKey) bool { return w.KeyID >= id }) {
			return fault.New(fault.Conflict, "a data-key rotation has started meanwhile")
		}
		if !slices.ContainsFunc(stored, func(w WrappedKey) bool { return w.KeyID == SearchKeyID }) {
			// The search-token key outlives the data key it derives from.
			sw, err := v.wrapAll(SearchKeyID, search)
			if err != nil {
				return fault.Wrap(fault.Unavailable, "rekey", err)
			}
			if err := ts.AddDataKey(ctx, sw, v.now().UTC()); err != nil {
				return err
			}
		}
		n, err := ts.CountSealedNotUnder(ctx, id)
		if err != nil {
			return err
		}
		r.Detail["values"] = n
		return ts.AddDataKey(ctx, ws, v.now().UTC())
	}})
	if err != nil {
		return RekeyStatus{}, err
	}
	a, err := gcm(key)
	if err != nil {
		return RekeyStatus{}, err
	}
	v.mu.Lock()
	v.keys[id], v.raw[id], v.current = a, key, id
	v.mu.Unlock()
	v.ResumeRekey()
	return v.RekeyStatus(ctx)
}

// RekeyStatus reports where a data-key rotation stands.
func (v *Vault) RekeyStatus(ctx context.Context) (RekeyStatus, error) {
	v.mu.Lock()
	st := RekeyStatus{DataKey: v.current}
	for id := range v.keys {
		if id != v.current {
			st.Retiring = append(st.Retiring, id)
		}
	}
	if w := v.rekey; w != nil {
		select {
		case <-w.done:
			if w.err != nil {
				st.LastError = w.err.Error()
			}
		default:
			st.Running = true
		}
	}
	v.mu.Unlock()
	slices.Sort(st.Retiring)
	if len(st.Retiring) == 0 {
		return st, nil
	}
	n, err := v.store.CountSealedNotUnder(ctx, st.DataKey)
	st.Remaining = n
	return st, err
}

// ResumeRekey takes up a data-key rotation under way (after a restart, or
// a batch that failed), in the background, unless it is running.
func (v *Vault) ResumeRekey() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed || len(v.keys) < 2 {
		return
	}
	if w := v.rekey; w != nil {
		select {
		case <-w.done:
		default:
			return // running
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{cancel: cancel, done: make(chan struct{})}
	v.rekey = w
	go func() {
		defer close(w.done)
		w.err = v.reencrypt(ctx)
	}()
}

// WaitRekey waits until the background re-encryption has stopped (done,
// failed or closed) or ctx ends, and returns why it stopped.
func (v *Vault) WaitRekey(ctx context.Context) error {
	v.mu.Lock()
	w := v.rekey
	v.mu.Unlock()
	if w == nil {
		return nil
	}
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the background re-encryption (a rotation left unfinished
// resumes at the next start) and waits for it.
func (v *Vault) Close() {
	v.mu.Lock()
	v.closed = true
	w := v.rekey
	v.mu.Unlock()
	if w != nil {
		w.cancel()
		<-w.done
	}
}

// reencrypt re-encrypts batches until none is left, then retires the old
// keys.
func (v *Vault) reencrypt(ctx context.Context) error {
	for ctx.Err() == nil {
		v.mu.Lock()
		current, batch := v.current, v.batch
		v.mu.Unlock()
		n, err := v.store.CountSealedNotUnder(ctx, current)
		if err != nil {
			return err
		}
		if n == 0 {
			err := v.retire(ctx, current)
			if fault.Is(err, fault.Conflict) {
				continue // a value was sealed under an old key meanwhile
			}
			return err
		}
		if err := v.reencryptBatch(ctx, current, batch); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (v *Vault) reencryptBatch(ctx context.Context, current, batch int) error {
	rec := audit.Record{Event: EventRekey, Outcome: audit.Success, Actor: "system", Target: "vault",
		Detail: map[string]any{"phase": "batch", "data_key": current}}
	_, err := v.audit.Write(context.WithoutCancel(ctx), audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, r *audit.Record) error {
		ts, ok := tx.(TxStore)
		if !ok {
			return fmt.Errorf("vault: store transaction %T lacks vault operations", tx)
		}
		rows, err := ts.SealedNotUnder(ctx, current, batch)
		if err != nil {
			return err
		}
		to, ok := v.keyFor(current)
		if !ok {
			return fault.New(fault.Unavailable, "data key %d is not held", current)
		}
		for _, s := range rows {
			if err := v.reseal(ctx, ts, s, to, current); err != nil {
				return err
			}
		}
		r.Detail["reencrypted"] = len(rows)
		return nil
	}})
	return err
}

// reseal re-encrypts one version under key id; its plaintext lives only
// for the call.
func (v *Vault) reseal(ctx context.Context, ts TxStore, s Sealed, to cipher.AEAD, id int) error {
	from, ok := v.keyFor(s.KeyID)
	if !ok {
		return fault.New(fault.Unavailable, "secret %s (%s) version %d is sealed under data key %d, which this server does not hold", s.Name, s.Environment, s.Version, s.KeyID)
	}
	aad := secretAAD(s.Name, s.Environment, s.Version)
	plain, err := from.Open(nil, s.Nonce, s.Ciphertext, aad)
	if err != nil {
		return fault.New(fault.Unavailable, "secret %s (%s) version %d does not decrypt", s.Name, s.Environment, s.Version)
	}
	nonce := make([]byte, to.NonceSize())
	rand.Read(nonce)
	s.KeyID, s.Nonce, s.Ciphertext = id, nonce, to.Seal(nil, nonce, plain, aad)
	clear(plain)
	return ts.Reseal(ctx, s)
}

// retire deletes the old keys' wrappings (refused by the store if a value
// is still sealed under one of them), then forgets them.
func (v *Vault) retire(ctx context.Context, current int) error {
	var old []int
	for _, id := range v.keyIDs() {
		if id != current {
			old = append(old, id)
		}
	}
	retired := make([]any, len(old))
	for i, id := range old {
		retired[i] = id
	}
	rec := audit.Record{Event: EventRekey, Outcome: audit.Success, Actor: "system", Target: "vault",
		Detail: map[string]any{"phase": "finish", "data_key": current, "retired": retired}}
	_, err := v.audit.Write(context.WithoutCancel(ctx), audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
		ts, ok := tx.(TxStore)
		if !ok {
			return fmt.Errorf("vault: store transaction %T lacks vault operations", tx)
		}
		for _, id := range old {
			if err := ts.RetireDataKey(ctx, id); err != nil {
				return err
			}
		}
		return nil
	}})
	if err != nil {
		return err
	}
	v.mu.Lock()
	for _, id := range old {
		delete(v.keys, id)
		clear(v.raw[id])
		delete(v.raw, id)
	}
	v.mu.Unlock()
	return nil
}

// CheckAll decrypts every stored version (old ones too) and returns how
// many there are: an error names the first that does not open. Operators
// run it after a restore; tests after crashes.
func (v *Vault) CheckAll(ctx context.Context) (int, error) {
	n := 0
	err := v.store.ScanSealed(ctx, func(s Sealed) error {
		k, ok := v.keyFor(s.KeyID)
		if !ok {
			return fmt.Errorf("secret %s (%s) version %d is sealed under data key %d, which is not held", s.Name, s.Environment, s.Version, s.KeyID)
		}
		plain, err := k.Open(nil, s.Nonce, s.Ciphertext, secretAAD(s.Name, s.Environment, s.Version))
		if err != nil {
			return fmt.Errorf("secret %s (%s) version %d does not decrypt under data key %d", s.Name, s.Environment, s.Version, s.KeyID)
		}
		clear(plain)
		n++
		return nil
	})
	return n, err
}

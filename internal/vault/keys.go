package vault

import (
	"cmp"
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
)

// KeyWrapper is a master key: it wraps and unwraps the data keys, which
// are stored only wrapped. A file key holds the key in memory; an HSM key
// never leaves the HSM (package vault/hsm).
type KeyWrapper interface {
	Wrap(plain, aad []byte) ([]byte, error)
	// Unwrap fails, revealing nothing, for a wrapping of another key.
	Unwrap(wrapped, aad []byte) ([]byte, error)
	// Describe names the key for messages ("the master key file"); never
	// key material.
	Describe() string
}

type fileKey struct {
	key []byte
	a   cipher.AEAD
}

// FileKey returns the master key of a key file (32 bytes): AES-256-GCM.
func FileKey(master []byte) (KeyWrapper, error) {
	if len(master) != 32 {
		return nil, errors.New("vault: the master key must be 32 bytes")
	}
	a, err := gcm(master)
	if err != nil {
		return nil, err
	}
	return &fileKey{key: slices.Clone(master), a: a}, nil
}

func (f *fileKey) Wrap(plain, aad []byte) ([]byte, error) {
	nonce := make([]byte, f.a.NonceSize())
	rand.Read(nonce)
	return f.a.Seal(nonce, nonce, plain, aad), nil
}

func (f *fileKey) Unwrap(w, aad []byte) ([]byte, error) {
	if len(w) < f.a.NonceSize() {
		return nil, errors.New("vault: a stored data key wrapping is malformed")
	}
	return f.a.Open(nil, w[:f.a.NonceSize()], w[f.a.NonceSize():], aad)
}

func (f *fileKey) Describe() string { return "the master key file" }

// minWrapped is the size of the shortest wrapping any master key makes:
// a 12-byte nonce and a 16-byte tag around the key.
const minWrapped = 12 + 16

// SearchKeyID is the key id of the audit search-token key's wrapping.
const SearchKeyID = 0

// keyAAD binds a wrapping to its key id: data key 1 keeps the binding it
// had before there could be several; the search key has its own.
func keyAAD(id int) []byte {
	switch id {
	case SearchKeyID:
		return []byte("ostiary-vault-search-key-v1")
	case 1:
		return []byte("ostiary-vault-data-key-v1")
	}
	return []byte("ostiary-vault-data-key-v2\x00" + strconv.Itoa(id))
}

// wrapAll wraps key id under every master key this server holds.
func (v *Vault) wrapAll(id int, key []byte) ([]WrappedKey, error) {
	var out []WrappedKey
	for _, w := range v.wrappers {
		b, err := w.Wrap(key, keyAAD(id))
		if err != nil {
			return nil, fmt.Errorf("vault: wrapping a data key with %s: %w", w.Describe(), err)
		}
		out = append(out, WrappedKey{KeyID: id, Wrapped: b})
	}
	return out, nil
}

// Open unwraps the data keys, creating (and recording) the first if the
// store has none: this happens before any secret is stored, in a
// transaction of its own, so no secret is ever sealed under a key that was
// not kept. While a master key is being rotated a data key has several
// wrappings; the one a master key of this server opens is used. While the
// data key is being rotated there are two data keys (Rekey), and both must
// open.
func (v *Vault) Open(ctx context.Context) error {
	wraps, err := v.store.WrappedDataKeys(ctx)
	if err != nil {
		return err
	}
	if len(wraps) == 0 {
		key := make([]byte, 32)
		rand.Read(key)
		wrapped, err := v.wrappers[0].Wrap(key, keyAAD(1))
		if err != nil {
			return fmt.Errorf("vault: wrapping the new data key with %s: %w", v.wrappers[0].Describe(), err)
		}
		rec := audit.Record{Event: EventInit, Outcome: audit.Success, Actor: "system"}
		_, err = v.audit.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
			ts, ok := tx.(TxStore)
			if !ok {
				return fmt.Errorf("vault: store transaction %T lacks vault operations", tx)
			}
			return ts.SaveWrappedDataKey(ctx, wrapped, v.now().UTC())
		}})
		if err != nil {
			return err
		}
		wraps = []WrappedKey{{KeyID: 1, Wrapped: wrapped}}
	}
	raw := map[int][]byte{}
	foreign := 0
	for _, w := range wraps {
		if len(w.Wrapped) < minWrapped {
			return errors.New("vault: a stored data key wrapping is malformed")
		}
		if _, ok := raw[w.KeyID]; ok {
			continue // already opened by another wrapping
		}
		opened := false
		for _, mk := range v.wrappers {
			if k, err := mk.Unwrap(w.Wrapped, keyAAD(w.KeyID)); err == nil && len(k) == 32 {
				raw[w.KeyID], opened = k, true
				break
			}
		}
		if !opened {
			foreign++
		}
	}
	ids := map[int]bool{}
	for _, w := range wraps {
		ids[w.KeyID] = true
	}
	for id := range ids {
		if _, ok := raw[id]; ok {
			continue
		}
		if id == SearchKeyID || len(raw) == 0 {
			return fmt.Errorf("vault: the data key does not open with this master key (%s): wrong OSTIARY_MASTER_KEY_FILE, or HSM key?", v.describe())
		}
		return fmt.Errorf("vault: data key %d, being rotated in, does not open with this master key (%s)", id, v.describe())
	}
	keys := map[int]cipher.AEAD{}
	current := 0
	for id, k := range raw {
		if id == SearchKeyID {
			continue
		}
		if keys[id], err = gcm(k); err != nil {
			return err
		}
		current = max(current, id)
	}
	if current == 0 {
		return errors.New("vault: the store holds no data key")
	}
	search := raw[SearchKeyID]
	if search == nil { // derived from the first data key until it is retired (Rekey keeps it)
		first := current
		for id := range keys {
			first = min(first, id)
		}
		search = deriveSearchKey(raw[first])
	}
	delete(raw, SearchKeyID)
	v.mu.Lock()
	v.keys, v.raw, v.current, v.search, v.foreign = keys, raw, current, search, foreign
	v.mu.Unlock()
	return nil
}

func (v *Vault) describe() string {
	var ds []string
	for _, w := range v.wrappers {
		ds = append(ds, w.Describe())
	}
	return joinOr(ds)
}

func joinOr(ss []string) string {
	switch len(ss) {
	case 0:
		return ""
	case 1:
		return ss[0]
	}
	out := ss[0]
	for _, s := range ss[1 : len(ss)-1] {
		out += ", " + s
	}
	return out + " or " + ss[len(ss)-1]
}

func deriveSearchKey(dek []byte) []byte {
	m := hmac.New(sha256.New, dek)
	m.Write([]byte("ostiary-audit-search-token-v1"))
	return m.Sum(nil)
}

// Rewrap wraps the data key under a new master key (admin only), so that
// servers can move to it without downtime: until they have, the old master
// key still opens the vault; retireOthers then deletes every other
// wrapping, after which only the new key does. Secret values are not
// re-encrypted: they are sealed under the data key, which does not change.
// It returns how many master keys now open the vault.
func (v *Vault) Rewrap(ctx context.Context, p *authn.Principal, newMaster []byte, retireOthers bool) (int, error) {
	rec := p.Record(EventRewrap, "vault")
	rec.Detail = map[string]any{"retire_others": retireOthers, "to": "file"}
	same := v.master != nil && subtle.ConstantTimeCompare(newMaster, v.master) == 1
	switch {
	case !p.Allows(authz.Admin, authz.All):
		return 0, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Forbidden, "permission denied: rotating the master key needs the admin grant"))
	case len(newMaster) != 32:
		return 0, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Invalid, "a master key is 32 bytes (64 hex characters)"))
	case same && !retireOthers:
		return 0, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Invalid, "that is already this server's master key"))
	}
	fk, _ := FileKey(newMaster)
	return v.rewrap(ctx, p, rec, fk, same, retireOthers)
}

// RewrapToHSM is Rewrap to the HSM key this server was started with: the
// way from a file key to the HSM (and Rewrap the way back).
func (v *Vault) RewrapToHSM(ctx context.Context, p *authn.Principal, retireOthers bool) (int, error) {
	rec := p.Record(EventRewrap, "vault")
	rec.Detail = map[string]any{"retire_others": retireOthers, "to": "hsm"}
	switch {
	case !p.Allows(authz.Admin, authz.All):
		return 0, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Forbidden, "permission denied: rotating the master key needs the admin grant"))
	case v.hsm == nil:
		return 0, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Invalid, "this server was not started with an HSM key (--master-key-pkcs11)"))
	}
	return v.rewrap(ctx, p, rec, v.hsm, true, retireOthers)
}

// rewrap wraps every key the vault holds (the data keys and, if stored,
// the search key) under mk; held says whether this server holds mk.
func (v *Vault) rewrap(ctx context.Context, p *authn.Principal, rec audit.Record, mk KeyWrapper, held, retireOthers bool) (int, error) {
	if !p.Allows(authz.Admin, authz.All) {
		return 0, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Forbidden, "permission denied: rotating the master key needs the admin grant"))
	}
	v.mu.Lock()
	raw := map[int][]byte{}
	for id, k := range v.raw {
		raw[id] = k
	}
	search := v.search
	v.mu.Unlock()
	if len(raw) == 0 {
		return 0, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Unavailable, "the vault is not open"))
	}
	var ws []WrappedKey
	ids := make([]int, 0, len(raw))
	for id := range raw {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		b, err := mk.Wrap(raw[id], keyAAD(id))
		if err != nil {
			return 0, audit.Refuse(ctx, v.audit, rec, fault.Wrap(fault.Unavailable, "rewrap", err))
		}
		ws = append(ws, WrappedKey{KeyID: id, Wrapped: b})
	}
	var n int
	_, err := v.audit.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, r *audit.Record) error {
		ts, ok := tx.(TxStore)
		if !ok {
			return fmt.Errorf("vault: store transaction %T lacks vault operations", tx)
		}
		stored, err := ts.WrappedDataKeys(ctx)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(stored, func(w WrappedKey) bool { return w.KeyID == SearchKeyID }) {
			b, err := mk.Wrap(search, keyAAD(SearchKeyID))
			if err != nil {
				return fault.Wrap(fault.Unavailable, "rewrap", err)
			}
			ws = append(ws, WrappedKey{KeyID: SearchKeyID, Wrapped: b})
		}
		n, err = ts.AddDataKeyWrap(ctx, ws, v.now().UTC(), retireOthers)
		r.Detail["master_keys"] = n
		return err
	}})
	if err == nil {
		v.mu.Lock()
		switch {
		case retireOthers && held:
			v.foreign = 0
		case retireOthers:
			v.foreign = len(ws)
		case !held:
			v.foreign += len(ws)
		}
		v.mu.Unlock()
	}
	return n, err
}

// keyIDs returns the ids of the data keys held, oldest first.
func (v *Vault) keyIDs() []int {
	v.mu.Lock()
	defer v.mu.Unlock()
	ids := make([]int, 0, len(v.keys))
	for id := range v.keys {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, cmp.Compare)
	return ids
}

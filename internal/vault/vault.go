// Package vault keeps upstream credentials: encrypted at rest with
// AES-256-GCM under a data key, itself wrapped by a master key that never
// touches the store. Secrets are versioned, scoped to upstreams, and have a
// value per environment (a key's environment picks which one); no API
// ever returns a value; upstream headers and stdio environments refer to
// them as ${secret:NAME}, resolved at the last moment and audited on every
// access by name and version, never by value. See DESIGN.md.
package vault

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
)

// Secret is a secret's metadata: never its value.
type Secret struct {
	Name         string    `json:"name"`
	Environment  string    `json:"environment"`
	Version      int       `json:"version"`
	Upstreams    []string  `json:"upstreams"` // where it may be injected
	CreatedAt    time.Time `json:"created_at"`
	CreatedBy    string    `json:"created_by"`
	LastAccessed time.Time `json:"last_accessed,omitzero"`
}

// Sealed is a stored secret version.
type Sealed struct {
	Secret
	Nonce, Ciphertext []byte
}

// Audit event types.
const (
	EventSet    = "secret-set"
	EventList   = "secret-list"
	EventAccess = "secret-access"
	EventRewrap = "vault-rewrap"
	EventToken  = "audit-search-token"
)

// Store is the read side.
type Store interface {
	WrappedDataKeys(ctx context.Context) ([][]byte, error) // newest first; none before the first start
	// LatestSecret returns the newest version of name in env, or an error
	// of kind fault.NotFound.
	LatestSecret(ctx context.Context, name, env string) (Sealed, error)
	ListSecrets(ctx context.Context) ([]Secret, error) // the newest version per name and environment
	TouchSecret(ctx context.Context, name, env string, version int, at time.Time) error
}

// TxStore is the write side, inside an audit transaction.
type TxStore interface {
	Store
	SaveWrappedDataKey(ctx context.Context, wrapped []byte, at time.Time) error // the first: fault.Conflict if there is one
	// AddDataKeyWrap stores another wrapping of the data key, first deleting
	// every other if retireOthers; it returns how many wrappings remain.
	AddDataKeyWrap(ctx context.Context, wrapped []byte, at time.Time, retireOthers bool) (int, error)
	InsertSecret(ctx context.Context, s Sealed) error
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// ValidName reports whether name can name a secret.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// RefRE matches a secret reference in a header or environment value.
var RefRE = regexp.MustCompile(`\$\{secret:([A-Za-z0-9][A-Za-z0-9_.-]{0,63})\}`)

// MaxValue bounds a secret value.
const MaxValue = 64 << 10

// Vault encrypts, stores and resolves secrets.
type Vault struct {
	store  Store
	audit  audit.Appender
	now    func() time.Time
	master []byte

	mu     sync.Mutex
	dek    cipher.AEAD // the data key, unwrapped by Open
	dekRaw []byte      // kept to wrap it under a new master key
	search []byte      // audit search-token key, derived from the data key
}

// New returns a Vault; master must be 32 bytes.
func New(store Store, a audit.Appender, master []byte, now func() time.Time) (*Vault, error) {
	if store == nil || a == nil || now == nil {
		return nil, errors.New("vault: missing dependency")
	}
	if len(master) != 32 {
		return nil, errors.New("vault: the master key must be 32 bytes")
	}
	return &Vault{store: store, audit: a, now: now, master: slices.Clone(master)}, nil
}

func gcm(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

const dekAAD = "ostiary-vault-data-key-v1"

// EventInit is the audit event of the data key's creation.
const EventInit = "vault-init"

// Open unwraps the data key, creating (and recording) it first if the store
// has none: this happens before any secret is stored, in a transaction of
// its own, so no secret is ever sealed under a key that was not kept.
// While a master key is being rotated the data key has several
// wrappings; the one this master key opens is used.
func (v *Vault) Open(ctx context.Context) error {
	wraps, err := v.store.WrappedDataKeys(ctx)
	if err != nil {
		return err
	}
	if len(wraps) == 0 {
		key := make([]byte, 32)
		rand.Read(key)
		wrapped, err := wrap(v.master, key, dekAAD)
		if err != nil {
			return err
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
		wraps = [][]byte{wrapped}
	}
	m, err := gcm(v.master)
	if err != nil {
		return err
	}
	var key []byte
	for _, w := range wraps {
		if len(w) < m.NonceSize() {
			return errors.New("vault: a stored data key wrapping is malformed")
		}
		if k, err := m.Open(nil, w[:m.NonceSize()], w[m.NonceSize():], []byte(dekAAD)); err == nil {
			key = k
			break
		}
	}
	if key == nil {
		return errors.New("vault: the data key does not open with this master key (wrong OSTIARY_MASTER_KEY_FILE?)")
	}
	dek, err := gcm(key)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.dek, v.dekRaw = dek, key
	v.mu.Unlock()
	return nil
}

// Rewrap wraps the data key under a new master key (admin only), so that
// servers can move to it without downtime: until they have, the old master
// key still opens the vault; retireOthers then deletes every other
// wrapping, after which only the new key does. Secret values are not
// re-encrypted: they are sealed under the data key, which does not change.
// It returns how many master keys now open the vault.
func (v *Vault) Rewrap(ctx context.Context, p *authn.Principal, newMaster []byte, retireOthers bool) (int, error) {
	rec := p.Record(EventRewrap, "vault")
	rec.Detail = map[string]any{"retire_others": retireOthers}
	if !p.Allows(authz.Admin, authz.All) {
		return 0, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Forbidden, "permission denied: rotating the master key needs the admin grant"))
	}
	if len(newMaster) != 32 {
		return 0, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Invalid, "a master key is 32 bytes (64 hex characters)"))
	}
	if subtle.ConstantTimeCompare(newMaster, v.master) == 1 && !retireOthers {
		return 0, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Invalid, "that is already this server's master key"))
	}
	v.mu.Lock()
	raw := v.dekRaw
	v.mu.Unlock()
	if raw == nil {
		return 0, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Unavailable, "the vault is not open"))
	}
	wrapped, err := wrap(newMaster, raw, dekAAD)
	if err != nil {
		return 0, audit.Refuse(ctx, v.audit, rec, err)
	}
	var n int
	_, err = v.audit.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, r *audit.Record) error {
		ts, ok := tx.(TxStore)
		if !ok {
			return fmt.Errorf("vault: store transaction %T lacks vault operations", tx)
		}
		var err error
		n, err = ts.AddDataKeyWrap(ctx, wrapped, v.now().UTC(), retireOthers)
		r.Detail["master_keys"] = n
		return err
	}})
	return n, err
}

func (v *Vault) dataKey() (cipher.AEAD, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.dek == nil {
		return nil, fault.New(fault.Unavailable, "the vault is not open")
	}
	return v.dek, nil
}

func wrap(key, plain []byte, aad string) ([]byte, error) {
	a, err := gcm(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize())
	rand.Read(nonce)
	return a.Seal(nonce, nonce, plain, []byte(aad)), nil
}

// secretAAD binds a ciphertext to its name, environment and version, so
// rows cannot be swapped. The default environment keeps the binding of
// schema 5 (before environments), so values sealed then still open; no
// other environment's binding can equal it.
func secretAAD(name, env string, version int) []byte {
	if env == authn.DefaultEnvironment {
		return []byte("ostiary-secret-v1\x00" + name + "\x00" + strconv.Itoa(version))
	}
	return []byte("ostiary-secret-v2\x00" + name + "\x00" + env + "\x00" + strconv.Itoa(version))
}

// Set stores a new version of a secret's value in env (empty: the default
// environment) (manage-secrets:*). The value is encrypted before it reaches
// the transaction; it appears nowhere else.
func (v *Vault) Set(ctx context.Context, p *authn.Principal, name, env string, value []byte, upstreams []string) (Secret, error) {
	if env == "" {
		env = authn.DefaultEnvironment
	}
	rec := p.Record(EventSet, "secret:"+name)
	rec.Detail = map[string]any{"upstreams": upstreams, "environment": env}
	s := Secret{Name: name, Environment: env, Upstreams: upstreams, CreatedAt: v.now().UTC(), CreatedBy: p.User}
	switch {
	case !p.Allows(authz.ManageSecrets, authz.All):
		return s, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Forbidden, "permission denied: this needs the manage-secrets grant"))
	case !ValidName(name):
		return s, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Invalid, "invalid secret name: 1–64 letters, digits, '_', '.', '-'"))
	case !authn.ValidEnvironment(env):
		rec.Detail["environment"] = "?"
		return s, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Invalid, "invalid environment name: 1–32 lower-case letters, digits and '-', starting with a letter"))
	case len(value) == 0 || len(value) > MaxValue:
		return s, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Invalid, "a secret value must be 1 to %d bytes", MaxValue))
	case len(upstreams) == 0:
		return s, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Invalid, "name at least one upstream the secret may be injected into"))
	}
	_, err := v.audit.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, r *audit.Record) error {
		ts, ok := tx.(TxStore)
		if !ok {
			return fmt.Errorf("vault: store transaction %T lacks vault operations", tx)
		}
		dek, err := v.dataKey()
		if err != nil {
			return err
		}
		s.Version = 1
		if prev, err := ts.LatestSecret(ctx, name, env); err == nil {
			s.Version = prev.Version + 1
		} else if !fault.Is(err, fault.NotFound) {
			return err
		}
		nonce := make([]byte, dek.NonceSize())
		rand.Read(nonce)
		r.Detail["version"] = s.Version
		return ts.InsertSecret(ctx, Sealed{Secret: s, Nonce: nonce, Ciphertext: dek.Seal(nil, nonce, value, secretAAD(name, env, s.Version))})
	}})
	return s, err
}

// List returns the latest metadata of every secret in every environment
// (manage-secrets:*).
func (v *Vault) List(ctx context.Context, p *authn.Principal) ([]Secret, error) {
	rec := p.Record(EventList, "")
	if !p.Allows(authz.ManageSecrets, authz.All) {
		return nil, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Forbidden, "permission denied: this needs the manage-secrets grant"))
	}
	return audit.Read(ctx, v.audit, rec, func() ([]Secret, error) { return v.store.ListSecrets(ctx) })
}

// Resolve returns the latest value of name in env (with its version) for
// injection into upstream on behalf of the caller rec names, after
// recording the access.
// It fails (and the request with it) if the secret has no value in env, is
// not scoped to upstream, or the access cannot be recorded: a key of one
// environment never receives another's value.
func (v *Vault) Resolve(ctx context.Context, name, upstream, env string, rec audit.Record) (Injected, error) {
	rec.Event, rec.Target = EventAccess, "secret:"+name
	rec.Detail = map[string]any{"upstream": upstream, "environment": env}
	s, err := v.store.LatestSecret(ctx, name, env)
	if fault.Is(err, fault.NotFound) { // refused: the caller's environment has no value
		err = fault.New(fault.Forbidden, "secret %s has no value in environment %s", name, env)
	}
	if err == nil && !slices.Contains(s.Upstreams, upstream) {
		err = fault.New(fault.Forbidden, "secret %s is not scoped to upstream %s", name, upstream)
	}
	var value []byte
	if err == nil {
		rec.Detail["version"] = s.Version
		var dek cipher.AEAD
		if dek, err = v.dataKey(); err == nil {
			if value, err = dek.Open(nil, s.Nonce, s.Ciphertext, secretAAD(name, env, s.Version)); err != nil {
				err = fault.New(fault.Unavailable, "secret %s does not decrypt", name)
			}
		}
	}
	if err != nil {
		return Injected{}, audit.Refuse(context.WithoutCancel(ctx), v.audit, rec, err)
	}
	if _, err := v.audit.Write(context.WithoutCancel(ctx), audit.Entry{Record: rec}); err != nil {
		return Injected{}, err
	}
	if now := v.now(); now.Sub(s.LastAccessed) >= time.Minute { // last access to the minute: no write per request
		v.store.TouchSecret(context.WithoutCancel(ctx), name, env, s.Version, now)
	}
	return Injected{Value: value, Version: s.Version}, nil
}

// SearchToken returns the token that stands in audit records for value, a
// credential an investigator suspects was recorded (read-audit). The
// request is itself recorded, without the value.
func (v *Vault) SearchToken(ctx context.Context, p *authn.Principal, value string) (string, error) {
	rec := p.Record(EventToken, "")
	if !p.Allows(authz.ReadAudit, authz.All) {
		return "", audit.Refuse(ctx, v.audit, rec, fault.New(fault.Forbidden, "permission denied: this needs the read-audit grant"))
	}
	if value == "" || len(value) > MaxValue {
		return "", audit.Refuse(ctx, v.audit, rec, fault.New(fault.Invalid, "give the suspected value, 1 to %d bytes", MaxValue))
	}
	key := v.searchKey()
	if key == nil {
		return "", audit.Refuse(ctx, v.audit, rec, fault.New(fault.Unavailable, "the vault is not open"))
	}
	if _, err := v.audit.Write(ctx, audit.Entry{Record: rec}); err != nil {
		return "", err
	}
	return token(key, value), nil
}

// Refs returns the secret names referred to in s.
func Refs(s string) []string {
	var out []string
	for _, m := range RefRE.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// Expand replaces every ${secret:NAME} in s using resolve.
func Expand(s string, resolve func(name string) ([]byte, error)) (string, error) {
	var firstErr error
	out := RefRE.ReplaceAllStringFunc(s, func(m string) string {
		if firstErr != nil {
			return ""
		}
		v, err := resolve(RefRE.FindStringSubmatch(m)[1])
		if err != nil {
			firstErr = err
			return ""
		}
		return string(v)
	})
	return out, firstErr
}

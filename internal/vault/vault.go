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
	// RotateEvery is how long a version may serve (zero: no schedule).
	RotateEvery Period `json:"rotate_every,omitzero"`
	// RotateNow marks a version for immediate replacement: compromised,
	// or reachable by someone who left (nil: not marked).
	RotateNow *Flag `json:"rotate_now,omitempty"`
	// RotationDue is when the version is due to be replaced (zero: never),
	// and Overdue whether that has passed; both as of the answer.
	RotationDue time.Time `json:"rotation_due,omitzero"`
	Overdue     bool      `json:"overdue,omitempty"`
	// AlertedAt is when its overdue alert was last recorded.
	AlertedAt time.Time `json:"last_overdue_alert,omitzero"`
	// KillSwitches were engaged when the version was declared
	// compromised; they are released once it is replaced.
	KillSwitches []string `json:"kill_switches,omitempty"`
}

// Flag is why a version must be replaced at once.
type Flag struct {
	At     time.Time `json:"at"`
	By     string    `json:"by"`
	Cause  string    `json:"cause"` // CauseCompromised or CauseStaffChange
	Reason string    `json:"reason"`
}

// Causes of a rotate-now mark.
const (
	CauseCompromised = "compromised"
	CauseStaffChange = "staff-change"
)

// Sealed is a stored secret version: its value sealed under data key KeyID.
type Sealed struct {
	Secret
	KeyID             int
	Nonce, Ciphertext []byte
}

// WrappedKey is one wrapping of data key KeyID by a master key. KeyID 0 is
// the audit search-token key (see DESIGN.md).
type WrappedKey struct {
	KeyID   int
	Wrapped []byte
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
	WrappedDataKeys(ctx context.Context) ([]WrappedKey, error) // newest first; none before the first start
	// LatestSecret returns the newest version of name in env, or an error
	// of kind fault.NotFound.
	LatestSecret(ctx context.Context, name, env string) (Sealed, error)
	ListSecrets(ctx context.Context) ([]Secret, error) // the newest version per name and environment
	TouchSecret(ctx context.Context, name, env string, version int, at time.Time) error
	// CountSealedNotUnder counts the stored versions (of every secret,
	// old ones too) sealed under another data key than keyID.
	CountSealedNotUnder(ctx context.Context, keyID int) (int, error)
	// ScanSealed calls fn with every stored version.
	ScanSealed(ctx context.Context, fn func(Sealed) error) error
	// StaleKillSwitches returns the versions, replaced since, that still
	// hold kill switches engaged when they were declared compromised.
	StaleKillSwitches(ctx context.Context) ([]Secret, error)
	// ClearKillSwitches forgets those of one version (once released).
	ClearKillSwitches(ctx context.Context, name, env string, version int) error
}

// TxStore is the write side, inside an audit transaction.
type TxStore interface {
	Store
	SaveWrappedDataKey(ctx context.Context, wrapped []byte, at time.Time) error // the first (key 1): fault.Conflict if there is one
	// AddDataKeyWrap stores more wrappings (by another master key) of the
	// data keys, first deleting every other if retireOthers; it returns how
	// many wrappings the newest data key then has.
	AddDataKeyWrap(ctx context.Context, wrapped []WrappedKey, at time.Time, retireOthers bool) (int, error)
	// AddDataKey stores the wrappings of a new data key (or of the search
	// key): fault.Conflict if that key id already has one.
	AddDataKey(ctx context.Context, wrapped []WrappedKey, at time.Time) error
	// RetireDataKey deletes every wrapping of keyID: fault.Conflict if a
	// stored version is still sealed under it.
	RetireDataKey(ctx context.Context, keyID int) error
	// SealedNotUnder returns up to limit versions sealed under another
	// data key than keyID.
	SealedNotUnder(ctx context.Context, keyID, limit int) ([]Sealed, error)
	// Reseal replaces one version's key id, nonce and ciphertext.
	Reseal(ctx context.Context, s Sealed) error
	InsertSecret(ctx context.Context, s Sealed) error
	// MarkRotateNow marks a version; false if it was marked already (the
	// first mark is kept).
	MarkRotateNow(ctx context.Context, name, env string, version int, f Flag) (bool, error)
	SetAlerted(ctx context.Context, name, env string, version int, at time.Time) error
	SetKillSwitches(ctx context.Context, name, env string, version int, ids []string) error
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
	store    Store
	audit    audit.Appender
	now      func() time.Time
	wrappers []KeyWrapper // the master keys this server holds; the first wraps new data keys
	master   []byte       // the file master key, if one of them
	hsm      KeyWrapper   // the HSM key, if one of them
	batch    int          // values re-encrypted per transaction by Rekey

	mu      sync.Mutex
	keys    map[int]cipher.AEAD // the data keys, unwrapped by Open, by id
	raw     map[int][]byte      // kept to wrap them under a new master key
	current int                 // the data key new values are sealed under
	foreign int                 // stored wrappings none of wrappers opens (a master-key rotation under way)
	search  []byte              // audit search-token key
	kill    Killer
	rekey   *worker // the running re-encryption, if any
	closed  bool
}

// New returns a Vault whose master key is a 32-byte key (a file's).
func New(store Store, a audit.Appender, master []byte, now func() time.Time) (*Vault, error) {
	fk, err := FileKey(master)
	if err != nil {
		return nil, err
	}
	v, err := NewWith(store, a, now, fk)
	if err != nil {
		return nil, err
	}
	v.master = slices.Clone(master)
	return v, nil
}

// NewWith returns a Vault opened by any of the given master keys (at
// least one): a file key, an HSM key, or both while moving from one to
// the other. New data keys are wrapped by every one of them.
func NewWith(store Store, a audit.Appender, now func() time.Time, wrappers ...KeyWrapper) (*Vault, error) {
	if store == nil || a == nil || now == nil || len(wrappers) == 0 || slices.Contains(wrappers, nil) {
		return nil, errors.New("vault: missing dependency")
	}
	v := &Vault{store: store, audit: a, now: now, wrappers: wrappers, batch: 200}
	for _, w := range wrappers {
		if fk, ok := w.(*fileKey); ok && v.master == nil {
			v.master = slices.Clone(fk.key)
		} else if !ok && v.hsm == nil {
			v.hsm = w
		}
	}
	return v, nil
}

func gcm(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// EventInit is the audit event of the data key's creation.
const EventInit = "vault-init"

func (v *Vault) dataKey() (cipher.AEAD, int, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.keys == nil {
		return nil, 0, fault.New(fault.Unavailable, "the vault is not open")
	}
	return v.keys[v.current], v.current, nil
}

// keyFor returns data key id, which opens values sealed under it.
func (v *Vault) keyFor(id int) (cipher.AEAD, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	k, ok := v.keys[id]
	return k, ok && id > 0
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

// SetOptions are a new version's settings besides its value.
type SetOptions struct {
	// RotateEvery sets the version's schedule (a pointer to zero clears
	// it); nil keeps the previous version's.
	RotateEvery *Period
}

// Set stores a new version of a secret's value in env (empty: the default
// environment) (manage-secrets:*), keeping the previous version's schedule.
func (v *Vault) Set(ctx context.Context, p *authn.Principal, name, env string, value []byte, upstreams []string) (Secret, error) {
	return v.SetWith(ctx, p, name, env, value, upstreams, SetOptions{})
}

// SetWith is Set with options. The value is encrypted before it reaches
// the transaction; it appears nowhere else. A new version clears the
// previous one's rotate-now mark, and releases the kill switches engaged
// when it was declared compromised.
func (v *Vault) SetWith(ctx context.Context, p *authn.Principal, name, env string, value []byte, upstreams []string, opts SetOptions) (Secret, error) {
	if env == "" {
		env = authn.DefaultEnvironment
	}
	rec := p.Record(EventSet, "secret:"+name)
	rec.Detail = map[string]any{"upstreams": upstreams, "environment": env}
	if opts.RotateEvery != nil {
		rec.Detail["rotate_every"] = opts.RotateEvery.String()
	}
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
	case opts.RotateEvery != nil && *opts.RotateEvery != 0 && (*opts.RotateEvery < MinPeriod || *opts.RotateEvery > MaxPeriod):
		return s, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Invalid, "a rotation period is between 1h and 3660d"))
	}
	var replaced bool
	_, err := v.audit.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, r *audit.Record) error {
		ts, ok := tx.(TxStore)
		if !ok {
			return fmt.Errorf("vault: store transaction %T lacks vault operations", tx)
		}
		dek, keyID, err := v.dataKey()
		if err != nil {
			return err
		}
		s.Version = 1
		if prev, err := ts.LatestSecret(ctx, name, env); err == nil {
			s.Version = prev.Version + 1
			s.RotateEvery = prev.RotateEvery
			replaced = len(prev.KillSwitches) > 0
			if prev.RotateNow != nil {
				r.Detail["replaces"] = prev.RotateNow.Cause // the mark it clears
			}
		} else if !fault.Is(err, fault.NotFound) {
			return err
		}
		if opts.RotateEvery != nil {
			s.RotateEvery = *opts.RotateEvery
		}
		nonce := make([]byte, dek.NonceSize())
		rand.Read(nonce)
		r.Detail["version"] = s.Version
		return ts.InsertSecret(ctx, Sealed{Secret: s, KeyID: keyID, Nonce: nonce, Ciphertext: dek.Seal(nil, nonce, value, secretAAD(name, env, s.Version))})
	}})
	if err == nil && replaced {
		v.ReleaseReplaced(context.WithoutCancel(ctx))
	}
	s.RotationDue, s.Overdue = Due(s, v.now())
	return s, err
}

// List returns the latest metadata of every secret in every environment
// (manage-secrets:*), with when each is due for rotation; overdue, only
// those past due.
func (v *Vault) List(ctx context.Context, p *authn.Principal, overdue bool) ([]Secret, error) {
	rec := p.Record(EventList, "")
	if overdue {
		rec.Detail = map[string]any{"overdue": true}
	}
	if !p.Allows(authz.ManageSecrets, authz.All) {
		return nil, audit.Refuse(ctx, v.audit, rec, fault.New(fault.Forbidden, "permission denied: this needs the manage-secrets grant"))
	}
	return audit.Read(ctx, v.audit, rec, func() ([]Secret, error) {
		ss, err := v.store.ListSecrets(ctx)
		if err != nil {
			return nil, err
		}
		now := v.now()
		out := ss[:0]
		for _, s := range ss {
			s.RotationDue, s.Overdue = Due(s, now)
			if !overdue || s.Overdue {
				out = append(out, s)
			}
		}
		return out, nil
	})
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
	var s Sealed
	var value []byte
	var err error
	for attempt := 0; attempt < 2; attempt++ { // a value re-encrypted between its read and its key's retirement is read again
		s, err = v.store.LatestSecret(ctx, name, env)
		if fault.Is(err, fault.NotFound) { // refused: the caller's environment has no value
			err = fault.New(fault.Forbidden, "secret %s has no value in environment %s", name, env)
		}
		if err == nil && !slices.Contains(s.Upstreams, upstream) {
			err = fault.New(fault.Forbidden, "secret %s is not scoped to upstream %s", name, upstream)
		}
		if err != nil {
			break
		}
		rec.Detail["version"] = s.Version
		dek, ok := v.keyFor(s.KeyID)
		if !ok {
			if _, _, err = v.dataKey(); err == nil {
				err = fault.New(fault.Unavailable, "secret %s is sealed under a data key this server does not hold", name)
			}
			continue
		}
		if value, err = dek.Open(nil, s.Nonce, s.Ciphertext, secretAAD(name, env, s.Version)); err != nil {
			err = fault.New(fault.Unavailable, "secret %s does not decrypt", name)
		}
		break
	}
	if err != nil {
		return Injected{}, audit.Refuse(context.WithoutCancel(ctx), v.audit, rec, err)
	}
	if _, err := v.audit.Write(context.WithoutCancel(ctx), audit.Entry{Record: rec}); err != nil {
		clear(value)
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

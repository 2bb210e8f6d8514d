//go:build cgo

package hsm

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"

	"github.com/miekg/pkcs11"
)

// Key is an AES key inside the HSM. Its methods are safe for concurrent
// use (one PKCS#11 session, serialised).
type Key struct {
	mu      sync.Mutex
	ctx     *pkcs11.Ctx
	sess    pkcs11.SessionHandle
	obj     pkcs11.ObjectHandle
	token   string
	label   string
	created bool
}

const (
	ivSize  = 12
	tagBits = 128
)

// Open loads the module, finds the token by its label, logs in with the
// PIN and finds the key by its label, generating it (sensitive,
// non-extractable) if the token has none. Its errors say plainly what is
// wrong (no module, no such token, a refused PIN) and never hold the PIN.
func Open(cfg Config) (*Key, error) {
	if cfg.Module == "" || cfg.Token == "" || cfg.Key == "" || cfg.PIN == "" {
		return nil, errors.New("HSM: a module, a token label, a key label and a PIN are all needed")
	}
	if _, err := os.Stat(cfg.Module); err != nil {
		return nil, fmt.Errorf("HSM: PKCS#11 module %s: %w", cfg.Module, err)
	}
	ctx := pkcs11.New(cfg.Module)
	if ctx == nil {
		return nil, fmt.Errorf("HSM: %s does not load as a PKCS#11 module", cfg.Module)
	}
	k := &Key{ctx: ctx, token: cfg.Token, label: cfg.Key}
	if err := ctx.Initialize(); err != nil && !isCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		ctx.Destroy()
		return nil, fmt.Errorf("HSM: module %s does not initialise: %v", cfg.Module, err)
	}
	if err := k.open(cfg); err != nil {
		k.Close()
		return nil, err
	}
	return k, nil
}

func isCode(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}

func (k *Key) open(cfg Config) error {
	slots, err := k.ctx.GetSlotList(true)
	if err != nil {
		return fmt.Errorf("HSM: listing the tokens: %v", err)
	}
	var labels []string
	slot, found := uint(0), false
	for _, s := range slots {
		ti, err := k.ctx.GetTokenInfo(s)
		if err != nil {
			continue
		}
		labels = append(labels, fmt.Sprintf("%q", ti.Label))
		if ti.Label == cfg.Token {
			if found {
				return fmt.Errorf("HSM: two tokens are labelled %q; labels must be unique", cfg.Token)
			}
			slot, found = s, true
		}
	}
	if !found {
		if len(labels) == 0 {
			labels = []string{"none"}
		}
		slices.Sort(labels)
		return fmt.Errorf("HSM: no token labelled %q in %s (tokens: %s)", cfg.Token, cfg.Module, joinComma(labels))
	}
	if k.sess, err = k.ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION); err != nil {
		return fmt.Errorf("HSM: opening a session on token %q: %v", cfg.Token, err)
	}
	if err := k.ctx.Login(k.sess, pkcs11.CKU_USER, cfg.PIN); err != nil && !isCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		switch {
		case isCode(err, pkcs11.CKR_PIN_INCORRECT):
			return fmt.Errorf("HSM: token %q refused the PIN (CKR_PIN_INCORRECT)", cfg.Token)
		case isCode(err, pkcs11.CKR_PIN_LOCKED):
			return fmt.Errorf("HSM: token %q has locked its PIN (CKR_PIN_LOCKED)", cfg.Token)
		}
		return fmt.Errorf("HSM: logging in to token %q: %v", cfg.Token, err)
	}
	return k.findKey(cfg.Key)
}

func joinComma(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ", "
		}
		out += s
	}
	return out
}

// findKey finds the AES key labelled label, generating it if absent.
func (k *Key) findKey(label string) error {
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
	if err := k.ctx.FindObjectsInit(k.sess, tmpl); err != nil {
		return fmt.Errorf("HSM: looking for key %q: %v", label, err)
	}
	objs, _, err := k.ctx.FindObjects(k.sess, 2)
	k.ctx.FindObjectsFinal(k.sess)
	if err != nil {
		return fmt.Errorf("HSM: looking for key %q: %v", label, err)
	}
	switch len(objs) {
	case 1:
		k.obj = objs[0]
		return k.checkKey()
	case 2:
		return fmt.Errorf("HSM: token %q holds two keys labelled %q; labels must be unique", k.token, label)
	}
	k.obj, err = k.ctx.GenerateKey(k.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
	})
	if err != nil {
		return fmt.Errorf("HSM: generating key %q on token %q: %v", label, k.token, err)
	}
	k.created = true
	return nil
}

// checkKey refuses a key that could leave the HSM, or that is not AES.
func (k *Key) checkKey() error {
	attrs, err := k.ctx.GetAttributeValue(k.sess, k.obj, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
	})
	if err != nil {
		return fmt.Errorf("HSM: reading key %q: %v", k.label, err)
	}
	for _, a := range attrs {
		switch a.Type {
		case pkcs11.CKA_KEY_TYPE:
			if len(a.Value) == 0 || a.Value[0] != pkcs11.CKK_AES {
				return fmt.Errorf("HSM: key %q is not an AES key", k.label)
			}
		case pkcs11.CKA_EXTRACTABLE:
			if len(a.Value) > 0 && a.Value[0] != 0 {
				return fmt.Errorf("HSM: key %q is extractable: the master key must never leave the HSM", k.label)
			}
		case pkcs11.CKA_SENSITIVE:
			if len(a.Value) > 0 && a.Value[0] == 0 {
				return fmt.Errorf("HSM: key %q is not sensitive: the master key must never leave the HSM", k.label)
			}
		}
	}
	return nil
}

// Created reports whether Open generated the key.
func (k *Key) Created() bool { return k.created }

// Wrap encrypts plain with AES-GCM inside the HSM: a fresh 12-byte IV,
// then the ciphertext and its 16-byte tag.
func (k *Key) Wrap(plain, aad []byte) ([]byte, error) {
	iv := make([]byte, ivSize)
	rand.Read(iv)
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctx == nil {
		return nil, errors.New("HSM: closed")
	}
	p := pkcs11.NewGCMParams(iv, aad, tagBits)
	defer p.Free()
	if err := k.ctx.EncryptInit(k.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, p)}, k.obj); err != nil {
		return nil, fmt.Errorf("HSM: wrap: %v", err)
	}
	ct, err := k.ctx.Encrypt(k.sess, plain)
	if err != nil {
		return nil, fmt.Errorf("HSM: wrap: %v", err)
	}
	if got := p.IV(); len(got) == ivSize {
		iv = got // an HSM may choose its own IV
	}
	return append(iv, ct...), nil
}

// Unwrap decrypts a Wrap result inside the HSM; it fails for anything
// else (another key's wrapping, other additional data, an altered byte).
func (k *Key) Unwrap(w, aad []byte) ([]byte, error) {
	if len(w) < ivSize+tagBits/8 {
		return nil, errors.New("HSM: a wrapping is too short")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctx == nil {
		return nil, errors.New("HSM: closed")
	}
	p := pkcs11.NewGCMParams(w[:ivSize], aad, tagBits)
	defer p.Free()
	if err := k.ctx.DecryptInit(k.sess, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, p)}, k.obj); err != nil {
		return nil, fmt.Errorf("HSM: unwrap: %v", err)
	}
	plain, err := k.ctx.Decrypt(k.sess, w[ivSize:])
	if err != nil {
		return nil, fmt.Errorf("HSM: unwrap: %v", err)
	}
	return plain, nil
}

// Describe names the key, for messages.
func (k *Key) Describe() string { return fmt.Sprintf("HSM key %q on token %q", k.label, k.token) }

// Close logs out and unloads the module.
func (k *Key) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ctx == nil {
		return nil
	}
	if k.sess != 0 {
		k.ctx.Logout(k.sess)
		k.ctx.CloseSession(k.sess)
	}
	err := k.ctx.Finalize()
	k.ctx.Destroy()
	k.ctx = nil
	return err
}

//go:build !cgo

package hsm

import "errors"

// Key is unavailable without cgo.
type Key struct{}

// Open refuses: a PKCS#11 module is a C library, which a binary built
// without cgo cannot load.
func Open(Config) (*Key, error) {
	return nil, errors.New("HSM: this ostiary was built without cgo and cannot load a PKCS#11 module; build it with CGO_ENABLED=1")
}

func (*Key) Created() bool                    { return false }
func (*Key) Wrap(_, _ []byte) ([]byte, error) { return nil, errors.New("HSM: unavailable") }
func (*Key) Unwrap(_, _ []byte) ([]byte, error) {
	return nil, errors.New("HSM: unavailable")
}
func (*Key) Describe() string { return "HSM key (unavailable)" }
func (*Key) Close() error     { return nil }

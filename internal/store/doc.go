// Package store holds Ostiary's only SQL, one subpackage per database
// (sqlite/ now, postgres/ later). Each implements the small interfaces the
// domain packages declare (audit.Store, audit.Source, authn.Store,
// identity.Reader and identity.TxStore) with hand-written SQL and embedded,
// versioned migrations, and maps driver errors to fault kinds.
package store

package sqlite_test

import (
	"context"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/identity"
	"github.com/ostiary/ostiary/internal/store/sqlite"
	"github.com/ostiary/ostiary/internal/store/sqlite/sqlitetest"
)

func TestConsolePasswords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := sqlitetest.Open(t)
	t0 := time.Unix(1_800_000_000, 0).UTC()
	tx := func(fn func(tx *sqlite.Tx) error) error {
		return st.AuditBatch(ctx, func(atx audit.Tx) error { return fn(atx.(*sqlite.Tx)) })
	}
	if err := tx(func(tx *sqlite.Tx) error {
		if err := tx.InsertUser(ctx, identity.User{Name: "alice", CreatedAt: t0}); err != nil {
			return err
		}
		return tx.InsertUser(ctx, identity.User{Name: "bot", Service: true, CreatedAt: t0})
	}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := st.ConsolePasswordHash(ctx, "alice"); ok || err != nil {
		t.Fatalf("before set: ok=%v err=%v", ok, err)
	}
	for _, h := range []string{"$argon2id$v=19$one", "$argon2id$v=19$two"} {
		if err := tx(func(tx *sqlite.Tx) error { return tx.SetConsolePassword(ctx, "alice", h, "admin", t0) }); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := st.ConsolePasswordHash(ctx, "alice"); !ok || err != nil || got != h {
			t.Fatalf("got %q ok=%v err=%v", got, ok, err)
		}
	}
	for _, name := range []string{"nobody", "bot"} {
		err := tx(func(tx *sqlite.Tx) error { return tx.SetConsolePassword(ctx, name, "$argon2id$x", "admin", t0) })
		if fault.KindOf(err) != fault.NotFound {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := tx(func(tx *sqlite.Tx) error { return tx.SetConsolePassword(ctx, "alice", "plaintext", "admin", t0) }); err == nil {
		t.Error("a non-argon2id value was stored")
	}
	if err := tx(func(tx *sqlite.Tx) error { return tx.SetUserDisabled(ctx, "alice", true) }); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := st.ConsolePasswordHash(ctx, "alice"); ok {
		t.Error("a disabled user can sign in to the console")
	}
}

package vault_test

import (
	"bufio"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/audit/wal"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/store/sqlite"
	"github.com/ostiary/ostiary/internal/store/sqlite/sqlitetest"
	"github.com/ostiary/ostiary/internal/vault"
)

// disk is a store, writer and vault on files in dir, as a server opens
// them, so that a child process can work on them and be killed.
type disk struct {
	store  *sqlite.Store
	log    *wal.Log
	writer *audit.Writer
	vault  *vault.Vault
	pub    ed25519.PublicKey
	cp     string
}

func openDisk(dir string, create bool) (*disk, error) {
	seed := filepath.Join(dir, "sign.seed")
	if create {
		if err := os.WriteFile(seed, make([]byte, ed25519.SeedSize), 0o600); err != nil {
			return nil, err
		}
	}
	b, err := os.ReadFile(seed)
	if err != nil {
		return nil, err
	}
	priv := ed25519.NewKeyFromSeed(b)
	d := &disk{pub: priv.Public().(ed25519.PublicKey), cp: filepath.Join(dir, "audit.checkpoint")}
	if d.store, err = sqlite.Open(ctx, filepath.Join(dir, "ostiary.db"), sqlite.Options{Create: create}); err != nil {
		return nil, err
	}
	if d.log, err = wal.Open(filepath.Join(dir, "audit"), wal.Options{SegmentSize: 1 << 20}); err != nil {
		d.store.Close()
		return nil, err
	}
	if d.writer, err = audit.NewWriter(ctx, audit.WriterConfig{Log: d.log, Store: d.store, Signer: priv, CheckpointPath: d.cp, Now: time.Now,
		CheckpointEvery: 50 * time.Millisecond}); err != nil {
		d.log.Close()
		d.store.Close()
		return nil, err
	}
	if d.vault, err = vault.New(d.store, d.writer, master(1), time.Now); err != nil {
		d.close()
		return nil, err
	}
	if err := d.vault.Open(ctx); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

func (d *disk) close() {
	if d.vault != nil {
		d.vault.Close()
	}
	d.writer.Close()
	d.log.Close()
	d.store.Close()
}

// TestRekeyChild is the child of TestRekeyKilled: it rotates the data
// key (or resumes the rotation under way) while setting new values, until
// done or killed.
func TestRekeyChild(t *testing.T) {
	dir := os.Getenv("OSTIARY_REKEY_CHILD")
	if dir == "" {
		t.Skip("run by TestRekeyKilled")
	}
	d, err := openDisk(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	d.vault.SetRekeyBatch(40)
	start := time.Now()
	st, err := d.vault.Rekey(ctx, admin) // starts one, or resumes the one under way
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("rekeying to data key %d, %d values left\n", st.DataKey, st.Remaining)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // serving meanwhile: new values keep being set
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := d.vault.Set(ctx, admin, "live", "", []byte(fmt.Sprintf("live-%d-%s", i, value)), []string{"fin"}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	err = d.vault.WaitRekey(ctx)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("rekeyed %d values in %s: %.0f values/s\n", st.Remaining, time.Since(start).Round(time.Millisecond), float64(st.Remaining)/time.Since(start).Seconds())
}

// A data-key rotation killed (SIGKILL) at random points leaves every
// value, old versions included, readable after each kill, under exactly
// the key its row names; the next start takes it up and finishes it, the
// old key retired; audit search tokens are unchanged and the chain
// verifies.
func TestRekeyKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	d, err := openDisk(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	const names, versions = 300, 3
	want := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, names)
	for i := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("s%03d", i)
			for v := range versions {
				val := fmt.Sprintf("%s-v%d-%s", name, v+1, value)
				if _, err := d.vault.Set(ctx, admin, name, "", []byte(val), []string{"fin"}); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				want[name] = val
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	tokenBefore, err := d.vault.SearchToken(ctx, admin, "ost_abc_suspected")
	if err != nil {
		t.Fatal(err)
	}
	d.close()

	check := func(when string) *disk {
		t.Helper()
		d, err := openDisk(dir, false)
		if err != nil {
			t.Fatalf("%s: the vault does not open: %v", when, err)
		}
		n, err := d.vault.CheckAll(ctx)
		if err != nil || n < names*versions {
			t.Fatalf("%s: %d values readable, %v", when, n, err)
		}
		for name, val := range want {
			got, err := d.vault.Resolve(ctx, name, "fin", "default", audit.Record{Actor: "alice"})
			if err != nil || string(got.Value) != val {
				t.Fatalf("%s: %s resolves to %q, %v", when, name, got.Value, err)
			}
		}
		return d
	}
	child := func(kill time.Duration) string {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^TestRekeyChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "OSTIARY_REKEY_CHILD="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var lines []string
		read := make(chan struct{})
		begun := make(chan struct{})
		go func() {
			defer close(read)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines = append(lines, sc.Text())
				if strings.HasPrefix(sc.Text(), "rekeying") {
					close(begun)
				}
			}
		}()
		limit := time.AfterFunc(2*time.Minute, func() { cmd.Process.Signal(syscall.SIGKILL) })
		defer limit.Stop()
		if kill > 0 {
			select { // killed at a random point of the rotation
			case <-begun:
				time.Sleep(kill)
			case <-read:
			}
			cmd.Process.Signal(syscall.SIGKILL)
		}
		<-read
		err = cmd.Wait()
		var ee *exec.ExitError
		if kill == 0 && err != nil || err != nil && !errors.As(err, &ee) {
			t.Fatalf("child: %v\n%s", err, strings.Join(lines, "\n"))
		}
		return strings.Join(lines, "\n")
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 21))
	for cycle := range 10 {
		kill := time.Duration(1+rng.IntN(300)) * time.Millisecond
		out := child(kill)
		t.Logf("cycle %d, killed after %s: %s", cycle, kill, firstLine(out))
		check(fmt.Sprintf("after cycle %d", cycle)).close()
	}
	out := child(0)
	t.Logf("last run: %s", out[strings.LastIndex(out, "rekeyed"):])
	d = check("at the end")
	defer d.close()
	st, err := d.vault.RekeyStatus(ctx)
	if err != nil || len(st.Retiring) != 0 || st.Remaining != 0 || st.DataKey < 2 {
		t.Errorf("the rotation did not finish: %+v, %v", st, err)
	}
	ws, _ := d.store.WrappedDataKeys(ctx)
	for _, w := range ws {
		if w.KeyID != st.DataKey && w.KeyID != vault.SearchKeyID {
			t.Errorf("data key %d was not retired", w.KeyID)
		}
	}
	if tok, _ := d.vault.SearchToken(ctx, admin, "ost_abc_suspected"); tok != tokenBefore {
		t.Errorf("the search token changed: %s, was %s", tok, tokenBefore)
	}
	d.vault.Close()
	d.writer.Close()
	cp, err := audit.ReadCheckpointFile(d.cp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(ctx, d.store, d.pub, cp); err != nil {
		t.Errorf("the audit chain does not verify: %v", err)
	}
	var phases []string
	d.store.ScanRecords(ctx, func(r *audit.Record) error {
		if r.Event == vault.EventRekey && r.Detail["phase"] != "batch" {
			phases = append(phases, fmt.Sprint(r.Detail["phase"]))
		}
		return nil
	})
	if len(phases) < 2 || phases[0] != "start" || phases[len(phases)-1] != "finish" {
		t.Errorf("rekey records: %v", phases)
	}
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "rekey") {
			return l
		}
	}
	return "(killed before it began)"
}

// While a rotation is under way both keys open their values; a new value
// is sealed under the new key; an operator without admin cannot start
// one; a second Rekey while one is running resumes it; rewrap during the
// rotation wraps both keys, so a new master key opens both.
func TestRekeyInProcess(t *testing.T) {
	f := newFixture(t)
	for i := range 30 {
		f.set(t, fmt.Sprintf("k%d", i), "", fmt.Sprintf("val-%d-%s", i, value), "fin")
	}
	if _, err := f.vault.Rekey(ctx, &authn.Principal{User: "ivy", Perms: authz.Permissions{Roles: authz.Grants{{Action: authz.ReadAudit, Resource: authz.All}}}}); !fault.Is(err, fault.Forbidden) {
		t.Errorf("a reader rekeyed: %v", err)
	}
	f.vault.SetRekeyBatch(7)
	st, err := f.vault.Rekey(ctx, admin)
	if err != nil || st.DataKey != 2 || len(st.Retiring) != 1 {
		t.Fatalf("rekey: %+v %v", st, err)
	}
	if err := f.vault.WaitRekey(ctx); err != nil {
		t.Fatal(err)
	}
	st, _ = f.vault.RekeyStatus(ctx)
	if st.Running || len(st.Retiring) != 0 || st.Remaining != 0 {
		t.Errorf("after: %+v", st)
	}
	for i := range 30 {
		got, err := f.resolve(fmt.Sprintf("k%d", i), "fin", "default")
		if err != nil || string(got.Value) != fmt.Sprintf("val-%d-%s", i, value) {
			t.Fatalf("k%d: %q %v", i, got.Value, err)
		}
	}
	batches := 0
	for _, r := range f.records(t, vault.EventRekey) {
		if r.Detail["phase"] == "batch" {
			batches++
		}
	}
	if batches != 5 { // 30 values, 7 a batch
		t.Errorf("%d batches", batches)
	}
	// The master key rotated afterwards opens the new data key.
	if _, err := f.vault.Rewrap(ctx, admin, master(9), true); err != nil {
		t.Fatal(err)
	}
	again := f.open(t, master(9))
	if n, err := again.CheckAll(ctx); err != nil || n != 30 {
		t.Errorf("under the new master key: %d, %v", n, err)
	}
	f.noValue(t, value)
}

// A rotation cannot start while a master-key rotation is half done: the
// new data key would be wrapped only by this server's key.
func TestRekeyRefusedDuringRewrap(t *testing.T) {
	f := newFixture(t)
	f.set(t, "fin", "", value, "fin")
	if _, err := f.vault.Rewrap(ctx, admin, master(7), false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.vault.Rekey(ctx, admin); !fault.Is(err, fault.Conflict) {
		t.Errorf("rekey during a rewrap: %v", err)
	}
	v := f.open(t, f.master) // a server that opened with both present
	if _, err := v.Rekey(ctx, admin); !fault.Is(err, fault.Conflict) {
		t.Errorf("rekey by a server that cannot open a wrapping: %v", err)
	}
}

// BenchmarkRekey reports the rotation's throughput, in values/s, with the
// default batch, on a real store (fsync'd commits).
func BenchmarkRekey(b *testing.B) {
	const n = 2000
	for b.Loop() {
		b.StopTimer()
		env := sqlitetest.New(b, time.Now)
		v, err := vault.New(env.Store, env.Writer, master(1), time.Now)
		if err != nil {
			b.Fatal(err)
		}
		if err := v.Open(ctx); err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 20 {
					if _, err := v.Set(ctx, admin, fmt.Sprintf("s%d", i), "", []byte(value), []string{"fin"}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.StartTimer()
		start := time.Now()
		if _, err := v.Rekey(ctx, admin); err != nil {
			b.Fatal(err)
		}
		if err := v.WaitRekey(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(n/time.Since(start).Seconds(), "values/s")
		v.Close()
	}
}

package app_test

import (
	"crypto/ed25519"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/anchor"
	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/testutil"
)

// Hostile tests of anchoring (issue 16, item 7):
//
//	attack                                                   observable that holds
//	data directory rolled back to a copy with its own         audit verify --anchor FILE and --anchor URL: exit 3
//	  signed checkpoint (more calls were anchored since)      (plain audit verify of the copy: exit 0, as before)
//	the current directory                                     audit verify --anchor: exit 0
//	anchor file unwritable, witness answering 500             calls go on; /readyz 200 with the anchors "failing";
//	                                                          logged once; delivered again once fixed
//	--anchor inside the data directory                        the server does not start

// witness is an HTTPS witness on 127.0.0.1: POST stores a checkpoint, GET
// answers the newest; fail makes it answer 500.
type witness struct {
	srv    *httptest.Server
	ca     string
	mu     sync.Mutex
	newest *audit.Checkpoint
	posts  int
	fail   bool
}

func newWitness(t *testing.T) *witness {
	w := &witness{}
	w.srv = httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.fail {
			http.Error(rw, "down", http.StatusInternalServerError)
			return
		}
		switch r.Method {
		case http.MethodPost:
			b, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
			var cp audit.Checkpoint
			if err := cp.UnmarshalJSON(b); err != nil {
				http.Error(rw, "bad", http.StatusBadRequest)
				return
			}
			w.posts++
			if w.newest == nil || cp.Seq > w.newest.Seq {
				w.newest = &cp
			}
		case http.MethodGet:
			if w.newest == nil {
				http.NotFound(rw, r)
				return
			}
			json.NewEncoder(rw).Encode(w.newest)
		}
	}))
	t.Cleanup(w.srv.Close)
	w.ca = filepath.Join(t.TempDir(), "witness-ca.pem")
	if err := os.WriteFile(w.ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: w.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *witness) seq() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.newest == nil {
		return 0
	}
	return w.newest.Seq
}

// copyDir copies a stopped server's data directory, as a backup does.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func anchorStatus(t *testing.T, s *apptest.Server) []anchor.Status {
	t.Helper()
	var body struct {
		Status  string          `json:"status"`
		Anchors []anchor.Status `json:"anchors"`
	}
	r := s.Do("GET", "/readyz", "", nil)
	mustStatus(t, r, http.StatusOK)
	r.JSON(t, &body)
	return body.Anchors
}

func TestAnchorRefusesRolledBackDataDir(t *testing.T) {
	t.Parallel()
	w := newWitness(t)
	file := filepath.Join(t.TempDir(), "ostiary.anchors")
	tune := func(c *config.Config) {
		c.Anchors, c.AnchorCA, c.AnchorBackoff, c.CheckpointEvery = []string{file, w.srv.URL + "/ck?token=s3cret"}, w.ca, 10*time.Millisecond, 50*time.Millisecond
	}
	s := apptest.StartWith(t, tune)
	mustStatus(t, s.Do("GET", "/api/v1/whoami", s.AdminKey, nil), http.StatusOK)
	testutil.Eventually(t, 10*time.Second, func() bool {
		st := anchorStatus(t, s)
		return len(st) == 2 && st[0].State == "ok" && st[1].State == "ok" && st[0].Kind == "file" && st[1].Kind == "witness"
	}, "both anchors deliver")
	s.Stop() // the final checkpoint is anchored too
	old := filepath.Join(t.TempDir(), "backup")
	copyDir(t, s.Dir, old)
	oldEnd, err := checkpointSeq(s.Dir)
	if err != nil {
		t.Fatal(err)
	}

	s.Restart(tune)
	for range 5 {
		mustStatus(t, s.Do("GET", "/api/v1/whoami", s.AdminKey, nil), http.StatusOK)
	}
	s.Stop()
	n, err := anchor.ReadNewest(t.Context(), file, "")
	if err != nil || !n.Found || n.Checkpoint.Seq <= oldEnd || w.seq() != n.Checkpoint.Seq {
		t.Fatalf("newest anchored: %+v %v (witness %d, the copy ends at %d)", n, err, w.seq(), oldEnd)
	}
	if strings.Contains(s.Logs(), "s3cret") {
		t.Error("the witness URL's query reached the log")
	}

	pub := filepath.Join(s.Dir, "keys", "audit-signing.pub")
	for _, a := range [][]string{{"--anchor", file}, {"--anchor", w.srv.URL + "/ck?token=s3cret", "--anchor-ca", w.ca}} {
		code, stdout, stderr := runCLI(s, "", append([]string{"audit", "verify", "--data", s.Dir, "--public-key", pub}, a...)...)
		if code != 0 || !strings.Contains(stdout, "anchored checkpoint at seq") {
			t.Fatalf("current directory, %v: exit %d\n%s%s", a[1], code, stdout, stderr)
		}
		code, stdout, stderr = runCLI(s, "", append([]string{"audit", "verify", "--data", old, "--public-key", pub}, a...)...)
		if code != 3 || !strings.Contains(stderr, "rolled back") {
			t.Fatalf("rolled-back copy, %v: exit %d\n%s%s", a[1], code, stdout, stderr)
		}
	}
	// Without the anchor the copy is, as far as it alone can tell, whole.
	if code, _, stderr := runCLI(s, "", "audit", "verify", "--data", old, "--public-key", pub); code != 0 {
		t.Fatalf("the copy without --anchor: exit %d %s", code, stderr)
	}
	// An anchor holding a checkpoint not signed by the trusted key (forged,
	// or another installation's) is a broken verification, not a pass.
	_, otherKey, _ := ed25519.GenerateKey(nil)
	forged := audit.Checkpoint{Seq: 1, Root: make([]byte, 32), Time: time.Now()}
	forged.Sign(otherKey)
	fb, _ := json.Marshal(forged)
	forgedFile := filepath.Join(t.TempDir(), "forged.anchors")
	if err := os.WriteFile(forgedFile, append(fb, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCLI(s, "", "audit", "verify", "--data", s.Dir, "--public-key", pub, "--anchor", forgedFile); code != 3 || !strings.Contains(stderr, "anchored checkpoint") {
		t.Fatalf("a forged anchor: exit %d %s", code, stderr)
	}
	// An anchor that cannot be read is not skipped.
	if code, _, _ := runCLI(s, "", "audit", "verify", "--data", s.Dir, "--anchor", file+".missing"); code != 1 {
		t.Fatalf("a missing anchor: exit %d", code)
	}
}

// checkpointSeq is the number of records a stopped data directory's log holds.
func checkpointSeq(dir string) (uint64, error) {
	cp, err := audit.ReadCheckpointFile(filepath.Join(dir, "audit.checkpoint"))
	return cp.Seq, err
}

// A failing anchor never holds up a call: calls go on, /readyz stays 200
// and says which anchor fails, the log says so once, and delivery resumes
// once the anchor is fixed.
func TestAnchorFailureDoesNotBlockCalls(t *testing.T) {
	t.Parallel()
	w := newWitness(t)
	w.fail = true
	file := filepath.Join(t.TempDir(), "anchors")
	if err := os.Mkdir(file, 0o700); err != nil { // a directory where the file should be: every append fails
		t.Fatal(err)
	}
	s := apptest.StartWith(t, func(c *config.Config) {
		c.Anchors, c.AnchorCA, c.AnchorBackoff, c.CheckpointEvery = []string{file, w.srv.URL}, w.ca, time.Millisecond, 20*time.Millisecond
	})
	for range 20 {
		mustStatus(t, s.Do("GET", "/api/v1/whoami", s.AdminKey, nil), http.StatusOK)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		st := anchorStatus(t, s)
		return st[0].State == "failing" && st[1].State == "failing"
	}, "both anchors reported failing")
	if n := strings.Count(s.Logs(), "audit checkpoint not anchored"); n != 2 {
		t.Fatalf("the failure was logged %d times, want once per anchor:\n%s", n, s.Logs())
	}
	os.Remove(file)
	w.mu.Lock()
	w.fail = false
	w.mu.Unlock()
	testutil.Eventually(t, 10*time.Second, func() bool {
		mustStatus(t, s.Do("GET", "/api/v1/whoami", s.AdminKey, nil), http.StatusOK)
		st := anchorStatus(t, s)
		return st[0].State == "ok" && st[1].State == "ok"
	}, "both anchors deliver again")
	n, err := anchor.ReadNewest(t.Context(), file, "")
	if err != nil || !n.Found {
		t.Fatalf("anchor file after recovery: %+v %v", n, err)
	}
}

// An anchor file inside the data directory (or reached through a link
// into it) would be rolled back with it: the server refuses to start.
func TestAnchorInsideDataDirRefused(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t)
	s.Stop()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(s.Dir, link); err != nil {
		t.Fatal(err)
	}
	// The anchor file itself a link into the data directory, existing or
	// not yet (appending would create it there).
	fileLink, dangling := filepath.Join(t.TempDir(), "anchors"), filepath.Join(t.TempDir(), "anchors")
	if err := os.WriteFile(filepath.Join(s.Dir, "anchors"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(s.Dir, "anchors"), fileLink); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(s.Dir, "anchors-new"), dangling); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(s.Dir, "anchors"), filepath.Join(link, "anchors"), fileLink} {
		err := s.TryRestart(func(c *config.Config) { c.Anchors = []string{p} })
		if err == nil || !strings.Contains(err.Error(), "inside the data directory") {
			t.Fatalf("--anchor %s: %v", p, err)
		}
	}
	if err := s.TryRestart(func(c *config.Config) { c.Anchors = []string{dangling} }); err == nil || !strings.Contains(err.Error(), "link to nothing") {
		t.Fatalf("--anchor a dangling link: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(s.Dir, "anchors-new")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the dangling link's target was created: %v", err)
	}
}

// A data directory rolled back and then run on: the server would start
// from the older state and write a new history (a fork) past what was
// anchored. The start refuses it, by file and by witness, rolled back or
// forked. And an anchor file that holds such a fork all the same (written
// by a version before this check, or anchored elsewhere and merged) is
// refused by audit verify --anchor, which checks every checkpoint the
// file holds, not just the newest (the fork's).
func TestAnchorRefusesForkAfterRollback(t *testing.T) {
	t.Parallel()
	w := newWitness(t)
	file := filepath.Join(t.TempDir(), "ostiary.anchors")
	anchored := func(anchors ...string) func(c *config.Config) {
		return func(c *config.Config) {
			c.Anchors, c.AnchorCA, c.AnchorBackoff, c.CheckpointEvery = anchors, w.ca, 10*time.Millisecond, 20*time.Millisecond
		}
	}
	s := apptest.StartWith(t, anchored(file, w.srv.URL))
	mustStatus(t, s.Do("GET", "/api/v1/whoami", s.AdminKey, nil), http.StatusOK)
	s.Stop()
	old := filepath.Join(t.TempDir(), "backup")
	copyDir(t, s.Dir, old)

	s.Restart(anchored(file, w.srv.URL))
	for range 5 {
		mustStatus(t, s.Do("GET", "/api/v1/whoami", s.AdminKey, nil), http.StatusOK)
	}
	s.Stop()
	first, err := anchor.ReadNewest(t.Context(), file, "")
	if err != nil || !first.Found || w.seq() != first.Checkpoint.Seq {
		t.Fatalf("anchored: %+v %v (witness %d)", first, err, w.seq())
	}
	rollBack := func() {
		t.Helper()
		if err := os.RemoveAll(s.Dir); err != nil {
			t.Fatal(err)
		}
		copyDir(t, old, s.Dir)
	}
	// Rolled back: each anchor alone refuses the start.
	rollBack()
	for _, a := range []string{file, w.srv.URL} {
		if err := s.TryRestart(anchored(a)); err == nil || !strings.Contains(err.Error(), "older than one already anchored") {
			t.Fatalf("a rolled-back directory started with --anchor %s: %v", a, err)
		}
	}
	// Run on without the anchors (or anchored elsewhere), past the seq
	// anchored before: a fork.
	elsewhere := filepath.Join(t.TempDir(), "elsewhere.anchors")
	rollBack()
	s.Restart(anchored(elsewhere))
	for range 20 {
		mustStatus(t, s.Do("GET", "/api/v1/whoami", s.AdminKey, nil), http.StatusOK)
	}
	s.Stop()
	fork, err := anchor.ReadNewest(t.Context(), elsewhere, "")
	if err != nil || !fork.Found || fork.Checkpoint.Seq <= first.Checkpoint.Seq {
		t.Fatalf("the fork did not pass seq %d: %+v %v", first.Checkpoint.Seq, fork, err)
	}
	for _, a := range []string{file, w.srv.URL} {
		if err := s.TryRestart(anchored(a)); err == nil || !strings.Contains(err.Error(), "not the anchored one") {
			t.Fatalf("a forked directory started with --anchor %s: %v", a, err)
		}
	}
	// The fork's checkpoints in the same file as the original's: the newest
	// line is the fork's, the older ones are not.
	forkLines, err := os.ReadFile(elsewhere)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(forkLines)
	f.Close()
	n, err := anchor.ReadNewest(t.Context(), file, "")
	if err != nil || n.Checkpoint.Seq != fork.Checkpoint.Seq {
		t.Fatalf("newest of the merged file: %+v %v", n, err)
	}
	pub := filepath.Join(s.Dir, "keys", "audit-signing.pub")
	code, stdout, stderr := runCLI(s, "", "audit", "verify", "--data", s.Dir, "--public-key", pub, "--anchor", file)
	if code != 3 || !strings.Contains(stderr, "fork of the anchored history") {
		t.Fatalf("a forked directory with --anchor: exit %d\n%s%s", code, stdout, stderr)
	}
	// An older line of the file not signed by the trusted key is named as
	// such when the log differs from it.
	_, otherKey, _ := ed25519.GenerateKey(nil)
	forged := audit.Checkpoint{Seq: 1, Root: make([]byte, 32), Time: time.Now()}
	forged.Sign(otherKey)
	fb, _ := json.Marshal(forged)
	nb, _ := json.Marshal(n.Checkpoint)
	forgedFile := filepath.Join(t.TempDir(), "forged.anchors")
	if err := os.WriteFile(forgedFile, append(append(fb, '\n'), append(nb, '\n')...), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCLI(s, "", "audit", "verify", "--data", s.Dir, "--public-key", pub, "--anchor", forgedFile)
	if code != 3 || !strings.Contains(stderr, "not the trusted key's") {
		t.Fatalf("an anchor file with a forged older line: exit %d %s", code, stderr)
	}
}

package anchor_test

import (
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/anchor"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/testutil"
)

func checkpoint(priv ed25519.PrivateKey, seq uint64) audit.Checkpoint {
	cp := audit.Checkpoint{Seq: seq, Root: make([]byte, 32), Time: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	cp.Hash[0] = byte(seq)
	cp.Sign(priv)
	return cp
}

// A file anchor whose last line was cut short (a crash mid-append) gets
// its next checkpoint on a line of its own: the newest is still read, and
// the torn line is counted, not mistaken for a checkpoint.
func TestFileAnchorAfterTornLine(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	path := filepath.Join(t.TempDir(), "anchors")
	p, err := anchor.New(anchor.Config{Anchors: []config.Anchor{{File: path}}, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	p.Offer(checkpoint(priv, 5))
	testutil.Eventually(t, 5*time.Second, func() bool { return p.Status()[0].LastSeq == 5 }, "first checkpoint anchored")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":99,"hash":"00`) // torn
	f.Close()
	p.Offer(checkpoint(priv, 7))
	p.Close()
	n, err := anchor.ReadNewest(context.Background(), path, "")
	if err != nil || !n.Found || n.Checkpoint.Seq != 7 || n.Skipped != 1 {
		t.Fatalf("newest %+v, %v", n, err)
	}
	b, _ := os.ReadFile(path)
	if lines := strings.Count(string(b), "\n"); lines != 3 {
		t.Fatalf("%d lines:\n%s", lines, b)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
}

// Offer never blocks, however slow the anchor: only the newest checkpoint
// waits, older ones are superseded.
func TestOfferNeverBlocks(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	path := filepath.Join(t.TempDir(), "anchors")
	p, err := anchor.New(anchor.Config{Anchors: []config.Anchor{{File: path}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10000 {
		p.Offer(checkpoint(priv, uint64(i+1)))
	}
	p.Close()
	n, err := anchor.ReadNewest(context.Background(), path, "")
	if err != nil || n.Checkpoint.Seq != 10000 {
		t.Fatalf("newest %+v, %v", n, err)
	}
}

func FuzzParseAnchor(f *testing.F) {
	for _, s := range []string{"/var/lib/a", "https://w.example/x?t=1", "http://127.0.0.1:9/x", "http://example.com/x", "relative/path",
		"/a/../b", "ftp://x", "https://user:pw@h/", "/a/", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := config.ParseAnchor(s)
		if err != nil {
			if strings.Contains(err.Error(), "?") && strings.Contains(s, "?") && strings.Contains(err.Error(), s) {
				t.Fatalf("the error repeats the URL: %v", err)
			}
			return
		}
		if (a.File == "") == (a.URL == "") {
			t.Fatalf("%q parsed as %+v", s, a)
		}
		if a.File != "" && (!filepath.IsAbs(a.File) || filepath.Clean(a.File) != a.File) {
			t.Fatalf("%q accepted as a file", s)
		}
		if a.URL != "" && !strings.HasPrefix(a.URL, "https://") && !strings.HasPrefix(a.URL, "http://") {
			t.Fatalf("%q accepted as a URL", s)
		}
	})
}

func TestInside(t *testing.T) {
	for _, c := range []struct {
		path, dir string
		in        bool
	}{{"/d/x", "/d", true}, {"/d", "/d", true}, {"/d/a/b", "/d", true}, {"/dd/x", "/d", false}, {"/x", "/d", false}, {"/d/../x", "/d", false}} {
		if got := config.Inside(c.path, c.dir); got != c.in {
			t.Errorf("Inside(%q, %q) = %v", c.path, c.dir, got)
		}
	}
}

// A witness that accepts the connection and never answers holds up
// neither Offer nor a stop: Close cuts it after its grace, and the
// failure is reported.
func TestHangingWitnessDoesNotHoldUpTheStop(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	p, err := anchor.New(anchor.Config{Anchors: []config.Anchor{{URL: srv.URL}}, CA: ca, Timeout: time.Hour, CloseGrace: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		p.Offer(checkpoint(priv, uint64(i+1)))
	}
	p.Close() // returns: the request under way is cut
	if st := p.Status()[0]; st.State != "failing" || st.Failures == 0 {
		t.Fatalf("status after a hanging witness: %+v", st)
	}
}

// ReadNewest gives every other distinct checkpoint of a file (Older), so
// that verify checks them all; ReadLatest, for a start, reads only the
// file's end, and finds the newest there even when the file is much
// longer and its tail begins mid-line; a missing file holds nothing.
func TestReadOlderAndLatest(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	path := filepath.Join(t.TempDir(), "anchors")
	var b strings.Builder
	for seq := uint64(1); seq <= 600; seq++ { // about 200 KiB
		for range 2 { // each twice: Older holds it once
			line, _ := checkpoint(priv, seq).MarshalJSON()
			b.Write(line)
			b.WriteByte('\n')
		}
	}
	b.WriteString(`{"seq":9999,"ha`) // torn
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := anchor.ReadNewest(context.Background(), path, "")
	if err != nil || n.Checkpoint.Seq != 600 || len(n.Older) != 599 || n.Older[0].Seq != 1 || n.Skipped != 1 {
		t.Fatalf("ReadNewest: seq %d, %d older, %d skipped, %v", n.Checkpoint.Seq, len(n.Older), n.Skipped, err)
	}
	l, err := anchor.ReadLatest(context.Background(), config.Anchor{File: path}, "")
	if err != nil || !l.Found || l.Checkpoint.Seq != 600 || l.Checkpoint.Verify(priv.Public().(ed25519.PublicKey)) != nil {
		t.Fatalf("ReadLatest: %+v %v", l, err)
	}
	if l, err := anchor.ReadLatest(context.Background(), config.Anchor{File: path + ".none"}, ""); err != nil || l.Found {
		t.Fatalf("ReadLatest of a missing file: %+v %v", l, err)
	}
}

package export

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/store/sqlite/sqlitetest"
	"github.com/ostiary/ostiary/internal/testutil"
	"github.com/ostiary/ostiary/internal/webhook"
)

var key = []byte("0123456789abcdef0123456789abcdef")

func write(t *testing.T, env *sqlitetest.Env, n int) {
	t.Helper()
	for i := range n {
		out := audit.Success
		if i%3 == 0 {
			out = audit.Denied
		}
		if _, err := env.Writer.Write(context.Background(), audit.Entry{Record: audit.Record{Event: "tool-call", Outcome: out, Actor: "alice", KeyID: "k1",
			RequestID: fmt.Sprintf("req-%d", i), Remote: "127.0.0.1:5555", Target: "tool:shop.refund", Detail: map[string]any{"i": i}}}); err != nil {
			t.Fatal(err)
		}
	}
	env.Settle()
}

func newExporter(t *testing.T, env *sqlitetest.Env, dir string, roots *x509.CertPool, specs ...string) *Exporter {
	t.Helper()
	var sps []Spec
	for _, s := range specs {
		sp, err := ParseSpec(s)
		if err != nil {
			t.Fatal(err)
		}
		sps = append(sps, sp)
	}
	e, err := New(Config{Specs: sps, Dir: dir, Source: env.Store, Auditor: env.Writer, Logger: slog.New(slog.DiscardHandler), Now: time.Now,
		Key: key, RootCAs: roots, Batch: 7, Every: time.Millisecond, Backoff: time.Millisecond, Hostname: "gw1"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// runUntil runs e until every cursor reaches seq, then stops it.
func runUntil(t *testing.T, e *Exporter, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	testutil.Eventually(t, 10*time.Second, func() bool {
		for _, c := range e.Cursors() {
			if c < seq {
				return false
			}
		}
		return true
	}, "cursors %v, want %d", e.Cursors(), seq)
	cancel()
	<-done
	e.Close()
}

func seqsOf(t *testing.T, path string) []uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var v audit.View
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("line %d: %q: %v", len(out)+1, sc.Text(), err)
		}
		out = append(out, v.Seq)
	}
	return out
}

// A file export holds every record once, in order; after a crash that
// cut its last line short and left the cursor one batch behind, the next
// start removes the torn line and sends that batch again: nothing lost,
// nothing duplicated beyond that batch.
func TestFileExportResumesWithoutLoss(t *testing.T) {
	env := sqlitetest.New(t, time.Now)
	dir, out := t.TempDir(), filepath.Join(t.TempDir(), "audit.jsonl")
	write(t, env, 30)
	runUntil(t, newExporter(t, env, dir, nil, "jsonl:file:"+out), 30)
	got := seqsOf(t, out)
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("seqs %v", got)
		}
	}
	if len(got) != 30 {
		t.Fatalf("%d lines", len(got))
	}
	// The crash: the cursor file still says 28 (the last batch, 29–30, was
	// written but the cursor not moved), and half a line follows.
	sp, _ := ParseSpec("jsonl:file:" + out)
	if err := saveCursor(filepath.Join(dir, sp.Name()+".cursor"), 28); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(out, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":31,"time":"2026`)
	f.Close()
	write(t, env, 5)
	runUntil(t, newExporter(t, env, dir, nil, "jsonl:file:"+out), 35)
	got = seqsOf(t, out)
	want := []uint64{}
	for i := uint64(1); i <= 30; i++ {
		want = append(want, i)
	}
	want = append(want, 29, 30, 31, 32, 33, 34, 35)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after the crash:\n got %v\nwant %v", got, want)
	}
}

// An HTTPS endpoint that fails gets the same batch again until it takes
// it; the failure and the recovery are on record; batches are signed.
func TestHTTPSExportRetries(t *testing.T) {
	env := sqlitetest.New(t, time.Now)
	var mu sync.Mutex
	var seqs []uint64
	fails := 2
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if !webhook.Verify(key, r.Header.Get(webhook.HeaderTimestamp), b, r.Header.Get(webhook.HeaderSignature)) || r.Header.Get("Content-Type") != "application/x-ndjson" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var e map[string]any
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			seqs = append(seqs, uint64(e["metadata"].(map[string]any)["sequence"].(float64)))
		}
	}))
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	write(t, env, 20)
	runUntil(t, newExporter(t, env, t.TempDir(), roots, "ocsf:"+srv.URL+"/ingest"), 20)
	mu.Lock()
	got := fmt.Sprint(seqs[:20])
	mu.Unlock()
	if want := fmt.Sprint(seqRange(1, 20)); got != want {
		t.Errorf("received %s, want %s", got, want)
	}
	var failing, resumed int
	for _, r := range env.Records(t) {
		switch r.Event {
		case EventFailing:
			failing++
			if r.Detail["error"] != "the export endpoint answered 503" || strings.Contains(fmt.Sprint(r.Detail), "/ingest") {
				t.Errorf("failing record: %+v", r)
			}
		case EventResumed:
			resumed++
		}
	}
	if failing != 1 || resumed != 1 {
		t.Errorf("%d failing and %d resumed records, want 1 and 1", failing, resumed)
	}
}

func seqRange(a, b uint64) []uint64 {
	var out []uint64
	for i := a; i <= b; i++ {
		out = append(out, i)
	}
	return out
}

// Syslog over TLS: RFC 5424 messages in RFC 5425 octet-counted frames,
// really received by a TLS server on 127.0.0.1 that verifies nothing of
// ours but is verified by us.
func TestSyslogTLSExport(t *testing.T) {
	env := sqlitetest.New(t, time.Now)
	cert, roots := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	msgs := make(chan string, 100)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for {
			n, err := br.ReadString(' ')
			if err != nil {
				return
			}
			l, err := strconv.Atoi(strings.TrimSpace(n))
			if err != nil || l > 1<<20 {
				return
			}
			b := make([]byte, l)
			if _, err := io.ReadFull(br, b); err != nil {
				return
			}
			msgs <- string(b)
		}
	}()
	write(t, env, 3)
	runUntil(t, newExporter(t, env, t.TempDir(), roots, "ocsf:syslog+tls://"+ln.Addr().String()), 3)
	for i := 1; i <= 3; i++ {
		var m string
		select {
		case m = <-msgs:
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d not received", i)
		}
		pri := "<110>1 "
		if i%3 == 1 { // write() denies every third
			pri = "<108>1 "
		}
		head := fmt.Sprintf(" gw1 ostiary - tool-call [ostiary@32473 seq=\"%d\"] {", i)
		if !strings.HasPrefix(m, pri) || !strings.Contains(m, head) {
			t.Fatalf("message %d: %q", i, m)
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(m[strings.Index(m, "] ")+2:]), &e); err != nil || e["class_uid"] != float64(classAuthorizeSess) {
			t.Fatalf("message %d body: %v %v", i, e, err)
		}
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "syslog"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, pool
}

func TestOCSFMapping(t *testing.T) {
	r := &audit.Record{Seq: 7, Time: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), Event: "user-create", Outcome: audit.Success, Actor: "admin", KeyID: "k1",
		RequestID: "req-1", Remote: "[::1]:443", Target: "user:alice"}
	e := ocsf(r)
	if e["class_uid"] != classAPIActivity || e["type_uid"] != 600301 || e["activity_name"] != "Create" || e["status_id"] != statusSuccess ||
		e["src_endpoint"].(map[string]any)["ip"] != "::1" || e["resources"].([]any)[0].(map[string]any)["name"] != "alice" || e["time"] != int64(1772442000000) {
		t.Errorf("%+v", e)
	}
	r.Event, r.Outcome, r.Reason = "tool-call", audit.Denied, "policy-deny"
	e = ocsf(r)
	if e["class_uid"] != classAuthorizeSess || e["category_uid"] != categoryIAM || e["status_id"] != statusFailure || e["status_code"] != "policy-deny" {
		t.Errorf("%+v", e)
	}
}

func TestParseSpec(t *testing.T) {
	for _, ok := range []string{"jsonl:file:/var/log/o.jsonl", "ocsf:https://siem.example.com/ingest?tenant=1", "ocsf:http://127.0.0.1:9000/x",
		"jsonl:syslog+tls://siem.example.com:6514"} {
		if _, err := ParseSpec(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "xml:file:/x", "jsonl:file:relative", "jsonl:file:/a/../b", "ocsf:http://siem.example.com/x",
		"ocsf:syslog+tls://siem.example.com", "ocsf:syslog+tls://u:p@siem.example.com:6514", "ocsf:syslog://siem.example.com:514", "ocsf:ftp://x"} {
		if _, err := ParseSpec(bad); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "tenant") {
			t.Errorf("%q: error repeats the query: %v", bad, err)
		}
	}
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"jsonl:file:/x", "ocsf:https://a.example.com/", "ocsf:syslog+tls://[::1]:6514", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := ParseSpec(s)
		if err != nil {
			return
		}
		switch sp.Kind {
		case TargetFile:
			if !filepath.IsAbs(sp.Path) {
				t.Fatalf("%q: relative path", s)
			}
		case TargetSyslog:
			if _, _, err := net.SplitHostPort(sp.Addr); err != nil {
				t.Fatalf("%q: addr %q", s, sp.Addr)
			}
		case TargetHTTPS:
		default:
			t.Fatalf("%q: kind %q", s, sp.Kind)
		}
	})
}

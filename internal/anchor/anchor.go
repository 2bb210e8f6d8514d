// Package anchor pushes signed audit checkpoints off the machine as they
// are made (serve --anchor), to files outside the data directory and to
// HTTPS witnesses, and reads the newest one back (audit verify --anchor),
// so that a data directory rolled back to an older state, with that
// state's own signed checkpoint, is refused (internal/audit/DESIGN.md,
// "Anchoring").
//
// Delivery never blocks the audit writer: Offer keeps only the newest
// checkpoint per anchor (a newer one attests everything an older one
// does) and one goroutine per anchor delivers it, with bounded retries.
// An anchor that keeps failing is logged (once when it starts failing,
// once when it recovers) and reported by Status; calls go on.
package anchor

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
)

// Attempts bounds the deliveries of one checkpoint to one anchor; the
// next checkpoint (within a second while records arrive) tries again.
const Attempts = 3

// MaxWitnessAnswer bounds what is read from a witness.
const MaxWitnessAnswer = 64 << 10

// Config configures a Pusher.
type Config struct {
	Anchors []config.Anchor
	CA      string // PEM file of the CAs trusted for https anchors; empty: the system's
	Logger  *slog.Logger
	Now     func() time.Time
	Backoff time.Duration // first retry delay; default 200ms, doubling
	Timeout time.Duration // one witness request; default 5s
	// RetryEvery is how often an anchor that failed tries its newest
	// checkpoint again while no newer one comes; default 30s.
	RetryEvery time.Duration
	// CloseGrace bounds how long Close waits for deliveries under way
	// (a witness that hangs) before cutting them; default 2s.
	CloseGrace time.Duration
}

// Status is one anchor's state, as /readyz shows it: by position and
// kind, never its path or URL.
type Status struct {
	Anchor       int       `json:"anchor"` // 1-based, in --anchor order
	Kind         string    `json:"kind"`   // file or witness
	State        string    `json:"state"`  // ok, failing, or pending (nothing delivered yet)
	LastSeq      uint64    `json:"-"`      // not shown: it tells the volume of activity to anyone who can reach /readyz
	LastOK       time.Time `json:"last_ok,omitzero"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	Failures     uint64    `json:"failures,omitempty"` // checkpoints not delivered after all their attempts
}

// Pusher delivers checkpoints to every anchor.
type Pusher struct {
	cfg     Config
	targets []*target
	quit    chan struct{}
	ctx     context.Context // cut by Close after CloseGrace: no stop waits on a witness that hangs
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
}

type target struct {
	p      *Pusher
	n      int
	a      config.Anchor
	name   string // for the operational log: the path, or the URL without query
	client *http.Client
	next   atomic.Pointer[audit.Checkpoint]
	kick   chan struct{}
	mu     sync.Mutex
	st     Status
}

// New starts one delivery goroutine per anchor.
func New(cfg Config) (*Pusher, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 200 * time.Millisecond
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.RetryEvery <= 0 {
		cfg.RetryEvery = 30 * time.Second
	}
	if cfg.CloseGrace <= 0 {
		cfg.CloseGrace = 2 * time.Second
	}
	client, err := Client(cfg.CA, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	p := &Pusher{cfg: cfg, quit: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	for i, a := range cfg.Anchors {
		t := &target{p: p, n: i + 1, a: a, client: client, kick: make(chan struct{}, 1), name: a.File}
		t.st = Status{Anchor: i + 1, Kind: "file", State: "pending"}
		if a.URL != "" {
			t.st.Kind, t.name = "witness", Redact(a.URL)
		}
		p.targets = append(p.targets, t)
	}
	for _, t := range p.targets {
		p.wg.Add(1)
		go t.run()
	}
	return p, nil
}

// Client is the HTTP client for witnesses: TLS 1.2+, trusting ca's
// certificates if given, no redirects (a witness that moves is
// misconfigured, and a redirect could carry the checkpoint elsewhere).
func Client(ca string, timeout time.Duration) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--anchor-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--anchor-ca %s holds no PEM certificate", ca)
		}
		tc.RootCAs = pool
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// Redact names a URL without its query, which may hold a credential.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(witness)"
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}

// Offer hands cp to every anchor; it never blocks (the writer's
// goroutine calls it). An anchor still busy with an older checkpoint
// delivers this one next, skipping any in between.
func (p *Pusher) Offer(cp audit.Checkpoint) {
	for _, t := range p.targets {
		c := cp
		t.next.Store(&c)
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}

// Status reports every anchor's state.
func (p *Pusher) Status() []Status {
	out := make([]Status, len(p.targets))
	for i, t := range p.targets {
		t.mu.Lock()
		out[i] = t.st
		t.mu.Unlock()
	}
	return out
}

// Close delivers what is still pending (the final checkpoint of a
// graceful stop) in one last attempt per anchor, and stops; witness
// requests still under way after CloseGrace are cut.
func (p *Pusher) Close() {
	p.once.Do(func() {
		close(p.quit)
		cut := time.AfterFunc(p.cfg.CloseGrace, p.cancel)
		p.wg.Wait()
		cut.Stop()
		p.cancel()
	})
	p.wg.Wait()
}

func (t *target) run() {
	defer t.p.wg.Done()
	var done uint64 // seq of the last checkpoint delivered or given up on
	retry := time.NewTicker(t.p.cfg.RetryEvery)
	defer retry.Stop()
	for {
		select {
		case <-t.kick:
		case <-retry.C:
			t.mu.Lock()
			failing := t.st.State == "failing"
			t.mu.Unlock()
			if cp := t.next.Load(); failing && cp != nil {
				t.deliver(*cp, true)
			}
			continue
		case <-t.p.quit:
			if cp := t.next.Load(); cp != nil && cp.Seq > done {
				t.deliver(*cp, false)
			}
			return
		}
		cp := t.next.Load()
		if cp == nil || (cp.Seq <= done && done != 0) {
			continue
		}
		done = cp.Seq
		t.deliver(*cp, true)
	}
}

// deliver tries cp up to Attempts times, backing off between them; once
// Close was called (last), a single attempt.
func (t *target) deliver(cp audit.Checkpoint, retry bool) {
	var err error
	delay := t.p.cfg.Backoff
	for i := range Attempts {
		if i > 0 {
			if !retry {
				break
			}
			select {
			case <-time.After(delay):
			case <-t.p.quit: // stopping: the final checkpoint gets its own attempt
			}
			delay *= 2
		}
		if t.a.File != "" {
			err = appendFile(t.a.File, cp)
		} else {
			err = t.post(cp)
		}
		if err == nil {
			break
		}
		select {
		case <-t.p.quit:
			retry = false
		default:
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.p.cfg.Now()
	if err == nil {
		if t.st.State == "failing" {
			t.p.cfg.Logger.Info("audit anchor delivering again", "anchor", t.n, "kind", t.st.Kind, "target", t.name, "seq", cp.Seq)
		}
		t.st.State, t.st.LastSeq, t.st.LastOK, t.st.FailingSince = "ok", cp.Seq, now, time.Time{}
		return
	}
	t.st.Failures++
	if t.st.State != "failing" {
		t.st.State, t.st.FailingSince = "failing", now
		t.p.cfg.Logger.Error("audit checkpoint not anchored; calls go on, but a rollback to after the last anchored checkpoint would go unnoticed until this is fixed",
			"anchor", t.n, "kind", t.st.Kind, "target", t.name, "seq", cp.Seq, "attempts", Attempts, "err", err)
	}
}

// appendFile appends cp as one JSON line and fsyncs the file (and its
// directory when it was created). A line cut short by an earlier failure
// is ended first, so every complete line stays readable.
func appendFile(path string, cp audit.Checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if r, err := os.Open(path); err == nil {
			_, rerr := r.ReadAt(last, st.Size()-1)
			r.Close()
			if rerr == nil && last[0] != '\n' {
				b = append([]byte{'\n'}, b...)
			}
		}
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if errors.Is(statErr, os.ErrNotExist) {
		d, err := os.Open(filepath.Dir(path))
		if err != nil {
			return err
		}
		defer d.Close()
		return d.Sync()
	}
	return nil
}

// post sends cp to a witness: POST, the checkpoint's JSON; any 2xx is
// acceptance.
func (t *target) post(cp audit.Checkpoint) error {
	b, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(t.p.ctx, t.p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.a.URL, bytes.NewReader(b))
	if err != nil {
		return errors.New("cannot build the request")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := t.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is not repeated: its query may be a credential
		}
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, MaxWitnessAnswer))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the witness answered %s", resp.Status)
	}
	return nil
}

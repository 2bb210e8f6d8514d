package export

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
)

// Audit events.
const (
	EventFailing = "export-failing" // a target stopped taking batches (once per streak)
	EventResumed = "export-resumed" // it takes them again
)

// Source reads the indexed records in seq order.
type Source interface {
	RecordsAfter(ctx context.Context, after uint64, limit int) ([]*audit.Record, error)
}

// Config configures an Exporter; Specs, Dir, Source, Auditor, Logger and
// Now are required.
type Config struct {
	Specs    []Spec
	Dir      string // where the cursors are kept
	Source   Source
	Auditor  audit.Appender
	Logger   *slog.Logger
	Now      func() time.Time
	Key      []byte         // signs HTTPS batches (the webhook key)
	RootCAs  *x509.CertPool // for HTTPS and syslog; nil: the system's
	Hostname string         // syslog HOSTNAME; default os.Hostname
	Batch    int            // records per batch; default 500
	Every    time.Duration  // how often a caught-up export looks again; default 500ms
	Backoff  time.Duration  // after a failed batch, doubling to 30s; default 1s
}

// Exporter runs one export per spec.
type Exporter struct {
	cfg  Config
	runs []*run
	wg   sync.WaitGroup
}

type run struct {
	spec   Spec
	sink   sink
	cursor uint64
	path   string // of the cursor file
	mu     sync.Mutex
}

// New opens every target's sink and reads its cursor.
func New(cfg Config) (*Exporter, error) {
	if len(cfg.Specs) == 0 || cfg.Dir == "" || cfg.Source == nil || cfg.Auditor == nil || cfg.Logger == nil || cfg.Now == nil {
		return nil, errors.New("export: missing dependency")
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Every <= 0 {
		cfg.Every = 500 * time.Millisecond
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
		if cfg.Hostname == "" {
			cfg.Hostname = "-"
		}
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	e := &Exporter{cfg: cfg}
	seen := map[string]bool{}
	for _, sp := range cfg.Specs {
		if seen[sp.Name()] {
			return nil, fmt.Errorf("export: %s given twice", sp.Describe())
		}
		seen[sp.Name()] = true
		r := &run{spec: sp, path: filepath.Join(cfg.Dir, sp.Name()+".cursor")}
		var err error
		if r.cursor, err = readCursor(r.path); err != nil {
			e.Close()
			return nil, err
		}
		if r.sink, err = e.open(sp); err != nil {
			e.Close()
			return nil, err
		}
		e.runs = append(e.runs, r)
	}
	return e, nil
}

func (e *Exporter) open(sp Spec) (sink, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: e.cfg.RootCAs}
	switch sp.Kind {
	case TargetFile:
		return openFile(sp.Path)
	case TargetSyslog:
		host, _, _ := net.SplitHostPort(sp.Addr)
		tc.ServerName = host
		return &syslogSink{addr: sp.Addr, tls: tc, hostname: e.cfg.Hostname}, nil
	}
	return &httpsSink{url: sp.URL, key: e.cfg.Key, now: e.cfg.Now, client: &http.Client{Timeout: 30 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// readCursor reads the seq an export has delivered through (0: none).
func readCursor(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("export cursor: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("export cursor %s is damaged: delete it to export everything again", path)
	}
	return n, nil
}

// saveCursor replaces the cursor durably: a temporary file, fsync,
// rename, fsync of the directory.
func saveCursor(path string, seq uint64) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(strconv.FormatUint(seq, 10) + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Run exports until ctx ends (one goroutine per target), then returns.
func (e *Exporter) Run(ctx context.Context) {
	for _, r := range e.runs {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.loop(ctx, r)
		}()
	}
	e.wg.Wait()
}

// Cursors returns each target's cursor, by description.
func (e *Exporter) Cursors() map[string]uint64 {
	out := map[string]uint64{}
	for _, r := range e.runs {
		r.mu.Lock()
		out[r.spec.Describe()] = r.cursor
		r.mu.Unlock()
	}
	return out
}

func (e *Exporter) loop(ctx context.Context, r *run) {
	wait := e.cfg.Backoff
	failing := 0
	for ctx.Err() == nil {
		n, err := e.step(ctx, r)
		switch {
		case err != nil && ctx.Err() == nil:
			failing++
			if failing == 1 {
				e.note(r, EventFailing, audit.Failed, err, 0)
			}
			e.cfg.Logger.Warn("export batch not delivered; retrying", "target", r.spec.Describe(), "err", err, "attempt", failing)
			sleep(ctx, wait)
			wait = min(2*wait, 30*time.Second)
			continue
		case err == nil && failing > 0:
			e.note(r, EventResumed, audit.Success, nil, failing)
			failing, wait = 0, e.cfg.Backoff
		}
		if n == 0 {
			sleep(ctx, e.cfg.Every)
		}
	}
}

// step sends the next batch, then moves the cursor past it.
func (e *Exporter) step(ctx context.Context, r *run) (int, error) {
	r.mu.Lock()
	after := r.cursor
	r.mu.Unlock()
	recs, err := e.cfg.Source.RecordsAfter(ctx, after, e.cfg.Batch)
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	lines := make([][]byte, len(recs))
	for i, rec := range recs {
		if lines[i], err = Line(r.spec.Format, rec); err != nil {
			return 0, err
		}
	}
	if err := r.sink.Send(ctx, recs, lines); err != nil {
		return 0, err
	}
	last := recs[len(recs)-1].Seq
	if err := saveCursor(r.path, last); err != nil {
		return 0, fmt.Errorf("cannot save the export cursor: %w", err)
	}
	r.mu.Lock()
	r.cursor = last
	r.mu.Unlock()
	return len(recs), nil
}

func (e *Exporter) note(r *run, event string, outcome audit.Outcome, err error, attempts int) {
	rec := audit.Record{Event: event, Outcome: outcome, Actor: "system", Target: "export:" + r.spec.Name(),
		Detail: map[string]any{"target": r.spec.Describe(), "cursor": int64(r.cursor)}}
	if err != nil {
		rec.Reason, rec.Detail["error"] = "export-undelivered", err.Error()
	}
	if attempts > 0 {
		rec.Detail["attempts"] = attempts
	}
	if _, werr := e.cfg.Auditor.Write(context.Background(), audit.Entry{Record: rec}); werr != nil {
		e.cfg.Logger.Error("export state not recorded", "err", werr)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Close closes the targets (after Run has returned).
func (e *Exporter) Close() {
	for _, r := range e.runs {
		if r.sink != nil {
			r.sink.Close()
		}
	}
}

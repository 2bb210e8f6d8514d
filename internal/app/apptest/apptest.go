// Package apptest starts a real Ostiary (the full wiring of package app) on
// a loopback port for end-to-end tests, with a clock the test controls.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/app"
	"github.com/ostiary/ostiary/internal/config"
)

// Clock is a settable clock, starting at the real time.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Server is a running Ostiary.
type Server struct {
	App      *app.App
	Dir      string
	URL      string // http://127.0.0.1:PORT
	AdminKey string
	Clock    *Clock
	Log      *bytes.Buffer // the operational log (read it with Logs while the server runs)
	lb       *logBuffer
	t        testing.TB
	tune     func(*config.Config)
}

// logBuffer is a goroutine-safe buffer.
type logBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

// Start initialises a fresh data directory and starts a server on it. It
// is stopped when the test ends.
func Start(t testing.TB) *Server { t.Helper(); return StartWith(t, nil) }

// StartWith is Start with the configuration adjusted by tune.
func StartWith(t testing.TB, tune func(*config.Config)) *Server {
	t.Helper()
	return StartIn(t, t.TempDir(), tune)
}

// StartIn is StartWith on a data directory at dir (e.g. on a small file
// system the test mounted), which must not be initialised yet.
func StartIn(t testing.TB, dir string, tune func(*config.Config)) *Server {
	t.Helper()
	clock := &Clock{t: time.Now()}
	key, err := app.Init(context.Background(), dir, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Dir: dir, AdminKey: key, Clock: clock, t: t, tune: tune}
	s.start()
	return s
}

func (s *Server) start() {
	s.t.Helper()
	if err := s.open(); err != nil {
		s.t.Fatal(err)
	}
}

// open opens and starts the server, or says why it would not start.
func (s *Server) open() error {
	t := s.t
	t.Helper()
	cfg := config.Default()
	cfg.DataDir, cfg.Listen = s.Dir, "127.0.0.1:0"
	cfg.ApprovalWait = 0 // held calls answer at once; tests that wait say so
	// Stdio upstreams in tests are the test binary itself (its TestMain
	// serves MCP when asked): that is all the server allows them to run.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg.StdioAllow = []string{exe}
	if s.tune != nil {
		s.tune(&cfg)
	}
	lb := &logBuffer{}
	s.Log, s.lb = &lb.Buffer, lb
	a, err := app.Open(context.Background(), cfg, cfg.Logger(lb), s.Clock.Now)
	if err != nil {
		return err
	}
	if err := a.Start(context.Background()); err != nil {
		a.Close(context.Background())
		return err
	}
	s.App, s.URL = a, "http://"+a.Addr()
	t.Cleanup(func() { a.Close(context.Background()) })
	return nil
}

// Logs is the operational log so far.
func (s *Server) Logs() string {
	s.lb.mu.Lock()
	defer s.lb.mu.Unlock()
	return s.lb.String()
}

// Stop stops the server gracefully (final checkpoint included).
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.App.Close(context.Background()); err != nil {
		s.t.Fatal(err)
	}
}

// Restart starts the server again on the same data directory (after Stop),
// with the configuration adjusted by tune instead.
func (s *Server) Restart(tune func(*config.Config)) {
	s.t.Helper()
	s.tune = tune
	s.start()
}

// TryRestart is Restart, but returns why the server would not start
// instead of failing the test.
func (s *Server) TryRestart(tune func(*config.Config)) error {
	s.t.Helper()
	s.tune = tune
	return s.open()
}

// Response is an answer from the server.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test if it cannot.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("status %d, body %q: %v", r.Status, r.Body, err)
	}
}

// Do sends a request with the given bearer key ("" for none). body may be
// nil, a string (sent as is) or a value (sent as JSON).
func (s *Server) Do(method, path, key string, body any) Response {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

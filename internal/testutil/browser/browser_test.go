package browser

import (
	"bytes"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestSelf: a strict CSP stops an injected inline script and an onerror
// handler (no dialog) while the allowed same-origin script runs, and a
// page sent with frame-ancestors 'none' is not framed by another origin.
func TestSelf(t *testing.T) {
	t.Parallel()
	victim := http.NewServeMux()
	victim.HandleFunc("GET /page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; frame-ancestors 'none'")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><title>victim</title></head><body>
<h1>Injected payloads below must stay inert</h1>
<script>window.injected = 1; alert(1)</script>
<img src="/missing.png" onerror="document.body.dataset.onerror='ran'; alert(2)">
<script src="/allowed.js"></script></body></html>`)
	})
	victim.HandleFunc("GET /allowed.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript")
		fmt.Fprint(w, `document.body.dataset.allowed = 'ran'; document.querySelector('h1').textContent += ' (allowed script ran)';`)
	})
	vs := httptest.NewServer(victim)
	defer vs.Close()
	// Another origin (another port) frames the victim.
	framer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>framer</title><p>framer</p><iframe src="%s/page" width="600" height="300"></iframe>`, vs.URL)
	}))
	defer framer.Close()

	res := Run(t, "selftest.js", map[string]string{"CSP_URL": vs.URL + "/page", "FRAMER_URL": framer.URL})
	if len(res.Checks) != 4 {
		t.Errorf("checks: %d, want 4: %+v", len(res.Checks), res.Checks)
	}
	if len(res.Screenshots) != 2 {
		t.Fatalf("screenshots: %v, want 2", res.Screenshots)
	}
	for _, f := range res.Screenshots {
		checkPNG(t, f)
	}
}

// TestCatchesDialog: the harness is not vacuous: a page without a CSP
// runs the payload, and its dialog fails the scenario.
func TestCatchesDialog(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><script>alert('xss')</script>`)
	}))
	defer srv.Close()
	ft := &fakeT{TB: t}
	res := RunInline(ft, `const b = require('./lib');
b.scenario(async (s) => {
  const p = await s.newPage();
  await p.goto(process.env.URL);
  s.check('loaded', true);
});`, map[string]string{"URL": srv.URL})
	if len(res.Dialogs) != 1 || res.Dialogs[0].Message != "xss" || res.OK {
		t.Fatalf("dialogs %+v ok %v: want the one alert recorded and the run failed", res.Dialogs, res.OK)
	}
	if !ft.failed {
		t.Fatal("an unexpected dialog did not fail the test")
	}
}

// TestTimeoutKillsBrowser: a scenario that hangs is stopped at its
// timeout, fails the test, and leaves neither node nor chromium running.
func TestTimeoutKillsBrowser(t *testing.T) {
	t.Parallel()
	Dir(t) // skips (or fails under CI) here, where the browser is missing, not inside the fake
	mark := fmt.Sprintf("OSTIARY_BROWSER_MARK=%d-%d", os.Getpid(), time.Now().UnixNano())
	ft := &fakeT{TB: t}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		Scenario{Source: `const b = require('./lib');
b.scenario(async (s) => {
  const p = await s.newPage();
  await p.goto('about:blank');
  s.check('started', true);
  await new Promise(() => {});
});`, Env: map[string]string{"OSTIARY_BROWSER_MARK": strings.TrimPrefix(mark, "OSTIARY_BROWSER_MARK=")}, Timeout: 3 * time.Second}.Run(ft)
	}()
	<-done
	if !ft.failed {
		t.Fatal("a scenario past its timeout did not fail the test")
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("the run took %s for a 3s timeout", d)
	}
	if pids := marked(mark); len(pids) > 0 {
		t.Fatalf("processes of the run still alive: %v", pids)
	}
}

// marked lists the processes whose environment holds mark.
func marked(mark string) []string {
	var pids []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(b, []byte{0}) {
			if string(kv) == mark {
				pids = append(pids, e.Name())
			}
		}
	}
	return pids
}

// fakeT records failures instead of failing the real test.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Errorf(format string, args ...any) {
	f.failed = true
	f.TB.Logf("(expected) "+format, args...)
}
func (f *fakeT) Error(args ...any) {
	f.failed = true
	f.TB.Log(append([]any{"(expected)"}, args...)...)
}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed = true
	f.TB.Logf("(expected) "+format, args...)
	runtime.Goexit()
}
func (f *fakeT) Failed() bool { return f.failed }

func checkPNG(t *testing.T, file string) {
	t.Helper()
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	b := img.Bounds()
	first := img.At(b.Min.X, b.Min.Y)
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		for x := b.Min.X; x < b.Max.X; x += 4 {
			if img.At(x, y) != first {
				return
			}
		}
	}
	t.Errorf("%s: %dx%d of one colour: nothing rendered", file, b.Dx(), b.Dy())
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progress is a status line on stderr while a command waits: a spinner,
// what it waits for, the time waited, and the last progress message the
// server sent. Only on a terminal; elsewhere it writes nothing, so scripts
// and logs see the result and the errors alone.
type progress struct {
	w     io.Writer
	mu    sync.Mutex
	what  string
	note  string
	start time.Time
	stop  chan struct{}
	done  chan struct{}
}

const spinner = `|/-\`

// startProgress shows what the command waits for until end is called.
func (e *env) startProgress(what string) *progress {
	p := &progress{what: what, start: time.Now()}
	if e.tty == nil || !e.tty(e.stderr) {
		return p
	}
	p.w, p.stop, p.done = e.stderr, make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(150 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			p.draw(spinner[i%len(spinner)])
			select {
			case <-p.stop:
				fmt.Fprint(p.w, "\r\033[K")
				return
			case <-t.C:
			}
		}
	}()
	return p
}

func (p *progress) draw(c byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := fmt.Sprintf("%c %s (%ds)", c, p.what, int(time.Since(p.start).Seconds()))
	if p.note != "" {
		line += ": " + p.note
	}
	fmt.Fprint(p.w, "\r\033[K"+line)
}

// notify sets the progress message shown (already made safe to print).
func (p *progress) notify(msg string) {
	p.mu.Lock()
	p.note = msg
	p.mu.Unlock()
	if p.stop != nil {
		p.draw('.')
	}
}

// end clears the status line.
func (p *progress) end() {
	if p.stop == nil {
		return
	}
	close(p.stop)
	<-p.done
	p.stop = nil
}

// withTimeout bounds ctx by the --timeout of a command (0: no bound of its
// own) and turns running out of it into an error that says so.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, d, &timeoutError{d})
}

type timeoutError struct{ d time.Duration }

func (t *timeoutError) Error() string { return fmt.Sprintf("no answer within --timeout %s", t.d) }

// timedOut rewrites err when ctx ran out of its --timeout.
func timedOut(ctx context.Context, err error, hint string) error {
	var te *timeoutError
	if err != nil && errors.As(context.Cause(ctx), &te) {
		return fmt.Errorf("%s%s", te.Error(), hint)
	}
	return err
}

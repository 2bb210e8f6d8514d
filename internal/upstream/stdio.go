package upstream

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os/exec"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/upstream/spec"
	"github.com/ostiary/ostiary/internal/vault"
)

// Stdio upstream processes: the admin's command, checked again against the
// operator's allow-list at each start, run with a minimal environment, its
// spawn audited, its stderr logged line by line.

// EventSpawn is the audit event of a stdio upstream process start.
const EventSpawn = "upstream-spawn"

// Admit checks what only the running server can say of an upstream: that
// a stdio upstream's program is on the operator's allow-list.
func (p *Pool) Admit(u spec.Upstream) error {
	if u.Kind == spec.HTTPAPI {
		return admitAPI(u)
	}
	if u.Kind != spec.Stdio {
		return nil
	}
	_, err := p.admitStdio(u)
	return err
}

// ReasonStdioRefused is the audit reason of a stdio process not started
// because its command or environment is not allowed.
const ReasonStdioRefused = "stdio-command-refused"

// command prepares a stdio upstream's process: the admin's command,
// checked again now against the allow-list and the environment rules (an
// upstream stored earlier, or a list narrowed since, must not run; a
// refusal is recorded), started from the real file that was checked, with
// a minimal environment (PATH and the configured variables only), stderr
// drained into the log, and the spawn audited before it happens.
func (p *Pool) command(ctx context.Context, c Caller, u spec.Upstream, e *pooled) (*exec.Cmd, error) {
	rec := audit.Record{Event: EventSpawn, Outcome: audit.Success, Actor: c.User, KeyID: c.KeyID, RequestID: c.RequestID,
		Target: "upstream:" + u.Name, Detail: map[string]any{"command": u.Command}}
	real, err := p.admitStdio(u)
	if err != nil {
		rec.Outcome, rec.Reason, rec.Detail["error"] = audit.Denied, ReasonStdioRefused, err.Error()
		p.cfg.Logger.Warn("stdio upstream not started", "upstream", u.Name, "principal", c.User, "request_id", c.RequestID, "err", err)
		if _, werr := p.cfg.Auditor.Write(ctx, audit.Entry{Record: rec}); werr != nil {
			return nil, werr
		}
		return nil, &refusedError{err}
	}
	cmd := exec.Command(real, u.Command[1:]...)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	known := vault.Known{}
	for k, v := range u.Env {
		v, err := p.resolve(ctx, c, u, v, known)
		if err != nil {
			return nil, err
		}
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if _, err := p.cfg.Auditor.Write(ctx, audit.Entry{Record: rec}); err != nil {
		return nil, err
	}
	if e != nil {
		e.injected = known
	}
	cmd.Dir = "/"
	cmd.Stderr = &lineLogger{log: p.cfg.Logger, upstream: u.Name, user: c.User, known: known}
	return cmd, nil
}

// admitStdio is Admit at process start: it returns the real file to run,
// and any refusal as a *spec.CommandError.
func (p *Pool) admitStdio(u spec.Upstream) (string, error) {
	if err := u.ValidStdio(); err != nil {
		prog := ""
		if len(u.Command) > 0 {
			prog = u.Command[0]
		}
		return "", &spec.CommandError{Command: prog, Reason: err.Error()}
	}
	return p.cfg.StdioAllow.Check(u.Command[0])
}

// lineLogger logs a stdio upstream's stderr line by line, bounded.
type lineLogger struct {
	log            *slog.Logger
	upstream, user string
	known          vault.Known // the secrets in the process's environment: redacted
	buf            []byte
}

func (l *lineLogger) Write(b []byte) (int, error) {
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			if len(l.buf) > 4096 { // an endless line: log what we have
				i = len(l.buf)
			} else {
				return len(b), nil
			}
		}
		line := l.known.RedactString(string(l.buf[:i])) // before cutting: a cut secret would not match
		line = line[:min(len(line), 1024)]
		l.log.Info("upstream stderr", "upstream", l.upstream, "user", l.user, "line", line)
		l.buf = l.buf[min(i+1, len(l.buf)):]
	}
}

var _ io.Writer = (*lineLogger)(nil)

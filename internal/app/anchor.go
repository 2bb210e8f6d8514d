package app

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/ostiary/ostiary/internal/anchor"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/config"
)

// openAnchors starts the delivery of checkpoints to --anchor targets. A
// file anchor must lie outside the data directory, symbolic links
// resolved: an anchor rolled back with the directory anchors nothing.
//
// Before anything is logged, the log must extend what each anchor holds
// (its newest checkpoint): a data directory rolled back, or rolled back
// and run on, is not served, nor its fork anchored. An anchor that cannot
// be read is logged and the start goes on (an anchor's outage is not the
// gateway's); what it holds is checked by audit verify --anchor.
func (a *App) openAnchors(ctx context.Context, pub ed25519.PublicKey) (*anchor.Pusher, error) {
	var targets []config.Anchor
	dir, err := filepath.EvalSymlinks(a.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	for i, s := range a.cfg.Anchors {
		t, err := config.ParseAnchor(s)
		if err != nil {
			return nil, fmt.Errorf("--anchor %d: %w", i+1, err)
		}
		if t.File != "" {
			parent, err := filepath.EvalSymlinks(filepath.Dir(t.File))
			if err != nil {
				return nil, fmt.Errorf("--anchor %s: its directory: %w", t.File, err)
			}
			real := filepath.Join(parent, filepath.Base(t.File))
			// The file itself may be a link (into the data directory, or
			// dangling: appending would create its target).
			if st, err := os.Lstat(real); err == nil && st.Mode()&fs.ModeSymlink != 0 {
				if real, err = filepath.EvalSymlinks(real); err != nil {
					return nil, fmt.Errorf("--anchor %s is a link to nothing: give the file itself", t.File)
				}
			}
			if config.Inside(real, dir) {
				return nil, fmt.Errorf("--anchor %s is inside the data directory: keep anchors elsewhere (another disk, another machine)", t.File)
			}
		}
		targets = append(targets, t)
	}
	for i, t := range targets {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := anchor.ReadLatest(rctx, t, a.cfg.AnchorCA)
		cancel()
		if err != nil {
			a.log.Error("audit anchor not readable at start: this start is not compared with what it holds; audit verify --anchor will",
				"anchor", i+1, "err", err)
			continue
		}
		if !n.Found {
			continue
		}
		if err := audit.CheckExtends(a.auditLog, pub, n.Checkpoint); err != nil {
			return nil, fmt.Errorf("--anchor %d (%s): %w", i+1, anchorKind(t), err)
		}
	}
	backoff := a.cfg.AnchorBackoff
	return anchor.New(anchor.Config{Anchors: targets, CA: a.cfg.AnchorCA, Logger: a.log, Now: a.now, Backoff: backoff, RetryEvery: 100 * backoff})
}

// AnchorStatus reports each anchor's delivery state (nil without --anchor).
func (a *App) AnchorStatus() []anchor.Status {
	if a.anchors == nil {
		return nil
	}
	return a.anchors.Status()
}

// readAnchors reads the checkpoints of each anchor given to audit verify
// --anchor: a witness's newest, every one a file holds (the log must match
// each: a newer fork of a rolled-back directory matches only the newest). An anchor that holds none yet adds nothing; one that
// cannot be read fails the verification (exit 1): a verification that
// was asked to compare with an anchor never silently skips it.
func readAnchors(ctx context.Context, srcs []string, ca string) ([]audit.Anchored, error) {
	var out []audit.Anchored
	for _, s := range srcs {
		n, err := anchor.ReadNewest(ctx, s, ca)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("--anchor %s: no such file", s)
		}
		if err != nil {
			return nil, fmt.Errorf("--anchor: %w", err)
		}
		if !n.Found {
			return nil, fmt.Errorf("--anchor %s holds no checkpoint", anchor.Redact(s))
		}
		out = append(out, audit.Anchored{Checkpoint: n.Checkpoint, From: anchor.Redact(s)})
		for _, cp := range n.Older {
			out = append(out, audit.Anchored{Checkpoint: cp, From: anchor.Redact(s), Older: true})
		}
	}
	return out, nil
}

func anchorKind(t config.Anchor) string {
	if t.URL != "" {
		return "witness " + anchor.Redact(t.URL)
	}
	return "file " + t.File
}

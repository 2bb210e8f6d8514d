package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
)

// Anchor is one place signed audit checkpoints are pushed to as they are
// made (--anchor): a file outside the data directory, appended to, or an
// HTTPS witness, POSTed to.
type Anchor struct {
	File string // an absolute path, or
	URL  string // https (http only to a loopback address)
}

// ParseAnchor reads an --anchor value: an https:// (or loopback http://)
// URL, or an absolute file path. Errors do not repeat a URL: its path or
// query may be a credential.
func ParseAnchor(s string) (Anchor, error) {
	if strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") {
		u, err := url.Parse(s)
		if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
			return Anchor{}, errors.New("want https://host/path (no user:password@, no #fragment)")
		}
		if u.Scheme == "http" {
			ip := net.ParseIP(u.Hostname())
			if ip == nil || !ip.IsLoopback() {
				return Anchor{}, fmt.Errorf("plain http only to a loopback address; use https for %s", u.Hostname())
			}
		}
		return Anchor{URL: s}, nil
	}
	if strings.Contains(s, "://") {
		return Anchor{}, errors.New("want an https:// URL or an absolute file path")
	}
	if !filepath.IsAbs(s) || filepath.Clean(s) != s || strings.HasSuffix(s, string(filepath.Separator)) {
		// The input is not repeated: a mistyped URL may carry a token in
		// its query, and this error reaches logs and terminals.
		return Anchor{}, errors.New("want an absolute, clean file path (or an https:// URL)")
	}
	return Anchor{File: s}, nil
}

// Inside reports whether path is dir or under it (lexically: the caller
// resolves symbolic links where it matters).
func Inside(path, dir string) bool {
	ad, err1 := filepath.Abs(dir)
	ap, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(ad, ap)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// validateAnchors checks --anchor and --anchor-ca.
func (c Config) validateAnchors() []error {
	var errs []error
	for i, s := range c.Anchors {
		a, err := ParseAnchor(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--anchor %d: %w", i+1, err))
			continue
		}
		if a.File != "" && c.DataDir != "" && Inside(a.File, c.DataDir) {
			errs = append(errs, fmt.Errorf("--anchor %q is inside the data directory: an anchor must survive the data directory being rolled back, so keep it elsewhere (another disk, another machine)", s))
		}
	}
	if c.AnchorCA != "" && !filepath.IsAbs(c.AnchorCA) {
		errs = append(errs, fmt.Errorf("--anchor-ca %q: want an absolute path", c.AnchorCA))
	}
	return errs
}

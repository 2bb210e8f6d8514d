// Package export sends the audit records to a SIEM as they are indexed:
// JSON Lines or OCSF (API Activity and Authorize Session classes), to a
// file, an HTTPS endpoint or syslog (RFC 5424 over TCP and TLS, RFC 5425
// framing). Delivery is at least once from a durable cursor: a batch is
// sent, then the cursor (a file, fsync'd) moves past it, so a crash
// resends at most the last batch and loses nothing.
package export

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/ostiary/ostiary/internal/config"
)

// Formats.
const (
	FormatJSONL = "jsonl" // one audit record view (audit.View) per line
	FormatOCSF  = "ocsf"  // one OCSF event per line
)

// Kinds of target.
const (
	TargetFile   = "file"
	TargetHTTPS  = "https"
	TargetSyslog = "syslog"
)

// Spec is one --export: FORMAT:TARGET.
type Spec struct {
	Raw    string
	Format string
	Kind   string
	Path   string // file
	URL    string // https
	Addr   string // syslog host:port
}

// ParseSpec reads "jsonl:file:/var/log/ostiary.jsonl",
// "ocsf:https://siem.example.com/ingest" (http only to loopback) or
// "ocsf:syslog+tls://siem.example.com:6514". Errors do not repeat a URL's
// path or query (they may be credentials).
func ParseSpec(s string) (Spec, error) {
	format, target, ok := strings.Cut(s, ":")
	sp := Spec{Raw: s, Format: format}
	if !ok || (format != FormatJSONL && format != FormatOCSF) {
		return sp, errors.New("want FORMAT:TARGET with FORMAT jsonl or ocsf")
	}
	switch {
	case strings.HasPrefix(target, "file:"):
		sp.Kind, sp.Path = TargetFile, strings.TrimPrefix(target, "file:")
		if !filepath.IsAbs(sp.Path) || filepath.Clean(sp.Path) != sp.Path {
			return sp, errors.New("file: an absolute, clean path")
		}
	case strings.HasPrefix(target, "syslog+tls://"):
		u, err := url.Parse(target)
		if err != nil || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return sp, errors.New("syslog+tls://HOST:PORT, nothing else")
		}
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			return sp, errors.New("syslog+tls://HOST:PORT, nothing else")
		}
		sp.Kind, sp.Addr = TargetSyslog, u.Host
	case strings.HasPrefix(target, "https://"), strings.HasPrefix(target, "http://"):
		if _, err := config.ParseWebhook(target); err != nil {
			return sp, err
		}
		sp.Kind, sp.URL = TargetHTTPS, target
	default:
		return sp, errors.New("TARGET: file:/PATH, https://URL or syslog+tls://HOST:PORT")
	}
	return sp, nil
}

// Name is a stable name of the spec for its cursor file.
func (s Spec) Name() string {
	h := sha256.Sum256([]byte(s.Raw))
	return s.Format + "-" + s.Kind + "-" + hex.EncodeToString(h[:8])
}

// Describe names the target without a URL's path or query.
func (s Spec) Describe() string {
	switch s.Kind {
	case TargetFile:
		return fmt.Sprintf("%s to file %s", s.Format, s.Path)
	case TargetSyslog:
		return fmt.Sprintf("%s to syslog over TLS at %s", s.Format, s.Addr)
	}
	host := ""
	if u, err := url.Parse(s.URL); err == nil {
		host = u.Host
	}
	return fmt.Sprintf("%s to %s", s.Format, host)
}

package export

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/webhook"
)

// sink takes one batch: lines is one encoded record per element. Send
// returns once the target has it (file: fsync'd; HTTPS: a 2xx; syslog:
// written to the connection).
type sink interface {
	Send(ctx context.Context, recs []*audit.Record, lines [][]byte) error
	Close() error
}

// fileSink appends lines to a file. A line a crash cut short at the end
// is removed when the file is opened: the cursor had not moved past it,
// so it is written again whole.
type fileSink struct{ f *os.File }

func openFile(path string) (*fileSink, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("export file: %w", err)
	}
	if err := trimTornLine(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("export file %s: %w", path, err)
	}
	return &fileSink{f: f}, nil
}

func trimTornLine(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	keep := size
	buf := make([]byte, 4096)
	for keep > 0 {
		n := min(int64(len(buf)), keep)
		if _, err := f.ReadAt(buf[:n], keep-n); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			keep = keep - n + int64(i) + 1
			break
		}
		keep -= n
	}
	if keep != size {
		if err := f.Truncate(keep); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
	}
	_, err = f.Seek(0, io.SeekEnd)
	return err
}

func (s *fileSink) Send(_ context.Context, _ []*audit.Record, lines [][]byte) error {
	var b bytes.Buffer
	for _, l := range lines {
		b.Write(l)
		b.WriteByte('\n')
	}
	if _, err := s.f.Write(b.Bytes()); err != nil {
		return err
	}
	return s.f.Sync()
}

func (s *fileSink) Close() error { return s.f.Close() }

// httpsSink POSTs a batch as JSON Lines (application/x-ndjson), signed
// like webhooks; a 2xx acknowledges it.
type httpsSink struct {
	url    string
	client *http.Client
	key    []byte
	now    func() time.Time
}

func (s *httpsSink) Send(ctx context.Context, recs []*audit.Record, lines [][]byte) error {
	body := bytes.Join(lines, []byte("\n"))
	body = append(body, '\n')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return errors.New("the export URL is not usable")
	}
	ts := strconv.FormatInt(s.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("User-Agent", "ostiary-export")
	req.Header.Set("X-Ostiary-First-Seq", strconv.FormatUint(recs[0].Seq, 10))
	req.Header.Set("X-Ostiary-Last-Seq", strconv.FormatUint(recs[len(recs)-1].Seq, 10))
	req.Header.Set(webhook.HeaderTimestamp, ts)
	req.Header.Set(webhook.HeaderSignature, webhook.Sign(s.key, ts, body))
	resp, err := s.client.Do(req)
	if err != nil {
		return errors.New("no answer from the export endpoint") // the error may hold the URL
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the export endpoint answered %d", resp.StatusCode)
	}
	return nil
}

func (s *httpsSink) Close() error { s.client.CloseIdleConnections(); return nil }

// syslogSink writes RFC 5424 messages over TLS with RFC 5425 octet-counting
// framing, one per record, its JSON as the message. The connection is
// made when needed and dropped on any error (the batch is sent again).
type syslogSink struct {
	addr     string
	tls      *tls.Config
	hostname string
	conn     net.Conn
}

// syslog PRI: facility 13 (log audit) × 8 + severity 6 (informational) or
// 4 (warning) for denials and failures.
const (
	priInfo    = 13*8 + 6
	priWarning = 13*8 + 4
)

func (s *syslogSink) Send(ctx context.Context, recs []*audit.Record, lines [][]byte) error {
	if s.conn == nil {
		d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: s.tls}
		c, err := d.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			return errors.New("cannot reach the syslog server over TLS")
		}
		s.conn = c
	}
	var b bytes.Buffer
	for i, r := range recs {
		pri := priInfo
		if r.Outcome != audit.Success {
			pri = priWarning
		}
		msg := fmt.Sprintf("<%d>1 %s %s ostiary - %s [ostiary@32473 seq=\"%d\"] %s", pri, r.Time.UTC().Format(time.RFC3339Nano), s.hostname,
			msgID(r.Event), r.Seq, lines[i])
		fmt.Fprintf(&b, "%d %s", len(msg), msg)
	}
	s.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := s.conn.Write(b.Bytes()); err != nil {
		s.conn.Close()
		s.conn = nil
		return errors.New("the syslog connection failed")
	}
	return nil
}

// msgID is the event as an RFC 5424 MSGID: printable US-ASCII, ≤ 32.
func msgID(event string) string {
	if len(event) > 32 {
		event = event[:32]
	}
	for _, c := range event {
		if c < 33 || c > 126 {
			return "-"
		}
	}
	if event == "" {
		return "-"
	}
	return event
}

func (s *syslogSink) Close() error {
	if s.conn != nil {
		return s.conn.Close()
	}
	return nil
}

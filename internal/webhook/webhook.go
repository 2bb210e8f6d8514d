// Package webhook tells people about approvals: each approval requested,
// decided or expired is POSTed to the configured URLs, signed with
// HMAC-SHA256, retried with exponential backoff, and its final outcome is
// an audit record. Payloads name the request, the tool, the score and the
// reasons — never the arguments, which approvers read in Ostiary.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
)

// Events.
const (
	Requested = approval.NotifyRequested
	Decided   = approval.NotifyDecided // a vote; the approval's status says whether it settled it
	Expired   = approval.NotifyExpired
)

// EventDelivery is the audit event of a delivery's final outcome.
const EventDelivery = "webhook-delivery"

// Formats of a payload.
const (
	FormatJSON  = "json"  // Ostiary's event object
	FormatSlack = "slack" // {"text": …}, for Slack-compatible incoming webhooks
)

// Headers of a delivery. The signature is
// sha256=hex(HMAC-SHA256(key, timestamp + "." + body)); receivers should
// refuse a timestamp more than a few minutes old.
const (
	HeaderEvent     = "X-Ostiary-Event"
	HeaderDelivery  = "X-Ostiary-Delivery"
	HeaderTimestamp = "X-Ostiary-Timestamp"
	HeaderSignature = "X-Ostiary-Signature"
)

// Target is one receiver.
type Target struct {
	URL    string
	Format string
}

// Config configures a Dispatcher.
type Config struct {
	Targets  []Target
	Key      []byte // HMAC key; at least 32 bytes
	Auditor  audit.Appender
	Logger   *slog.Logger
	Now      func() time.Time
	Client   *http.Client  // default: 10 s timeout, no redirects
	Attempts int           // per delivery; default 5
	Backoff  time.Duration // before the second attempt, doubling; default 1 s
	Queue    int           // deliveries waiting; default 1000 (more are dropped, on record)
}

// Dispatcher delivers events in the background, in order per process.
type Dispatcher struct {
	cfg    Config
	queue  chan delivery
	done   chan struct{}
	once   sync.Once
	mu     sync.Mutex // guards closed and sends on queue
	closed bool
	stop   context.CancelFunc
	ctx    context.Context
}

type delivery struct {
	id, event string
	target    Target
	body      []byte
	approval  string
}

// New starts a Dispatcher.
func New(cfg Config) (*Dispatcher, error) {
	if len(cfg.Key) < 32 {
		return nil, errors.New("webhook: the signing key must be at least 32 bytes")
	}
	if cfg.Auditor == nil || cfg.Logger == nil || cfg.Now == nil {
		return nil, errors.New("webhook: missing dependency")
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 1000
	}
	d := &Dispatcher{cfg: cfg, queue: make(chan delivery, cfg.Queue), done: make(chan struct{})}
	d.ctx, d.stop = context.WithCancel(context.Background())
	go d.run()
	return d, nil
}

// Close delivers what is queued for up to grace, then cuts the delivery
// in progress and drops the rest, each on record as failed.
func (d *Dispatcher) Close() {
	d.once.Do(func() {
		d.mu.Lock()
		d.closed = true
		close(d.queue)
		d.mu.Unlock()
		select {
		case <-d.done:
		case <-time.After(closeGrace):
			d.stop()
			<-d.done
		}
		d.stop()
	})
}

const closeGrace = 5 * time.Second

// Notify queues event about a for every target. It never blocks: a full
// queue drops the delivery, on record.
func (d *Dispatcher) Notify(event string, a approval.Approval) {
	for _, t := range d.cfg.Targets {
		body, err := payload(t.Format, event, a, d.cfg.Now())
		if err != nil {
			d.cfg.Logger.Error("webhook payload", "err", err)
			continue
		}
		dl := delivery{id: newID(), event: event, target: t, body: body, approval: a.ID}
		d.mu.Lock()
		queued := false
		if !d.closed {
			select {
			case d.queue <- dl:
				queued = true
			default:
			}
		}
		d.mu.Unlock()
		if !queued {
			d.record(dl, 0, errors.New("the delivery queue is full or closed"))
		}
	}
}

func (d *Dispatcher) run() {
	defer close(d.done)
	for dl := range d.queue {
		if d.ctx.Err() != nil {
			d.record(dl, 0, errors.New("the server stopped before delivery"))
			continue
		}
		n, err := d.deliver(dl)
		d.record(dl, n, err)
	}
}

// deliver tries up to Attempts times: again after a network error, a 5xx
// or a 429, with exponential backoff; not after another 4xx.
func (d *Dispatcher) deliver(dl delivery) (int, error) {
	wait := d.cfg.Backoff
	var err error
	for attempt := 1; ; attempt++ {
		var retry bool
		retry, err = d.post(dl)
		if err == nil || !retry || attempt == d.cfg.Attempts {
			return attempt, err
		}
		select {
		case <-time.After(wait):
		case <-d.ctx.Done():
			return attempt, err
		}
		wait *= 2
	}
}

func (d *Dispatcher) post(dl delivery) (retry bool, err error) {
	ts := strconv.FormatInt(d.cfg.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(d.ctx, http.MethodPost, dl.target.URL, bytes.NewReader(dl.body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ostiary-webhook")
	req.Header.Set(HeaderEvent, dl.event)
	req.Header.Set(HeaderDelivery, dl.id)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(d.cfg.Key, ts, dl.body))
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		return true, errors.New("no answer from the receiver") // the error may hold the URL: not recorded
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("the receiver answered %d", resp.StatusCode)
	default:
		return false, fmt.Errorf("the receiver answered %d", resp.StatusCode)
	}
}

// record writes a delivery's final outcome. The target is named by host
// only: a webhook URL's path is often its credential (Slack's are).
func (d *Dispatcher) record(dl delivery, attempts int, err error) {
	host := ""
	if u, perr := url.Parse(dl.target.URL); perr == nil {
		host = u.Host
	}
	rec := audit.Record{Event: EventDelivery, Outcome: audit.Success, Actor: "system", Target: "approval:" + dl.approval,
		Detail: map[string]any{"webhook_event": dl.event, "delivery": dl.id, "host": host, "format": dl.target.Format, "attempts": attempts}}
	if err != nil {
		rec.Outcome, rec.Reason = audit.Failed, "webhook-undelivered"
		rec.Detail["error"] = err.Error()
		d.cfg.Logger.Warn("webhook not delivered", "event", dl.event, "approval", dl.approval, "host", host, "attempts", attempts, "err", err)
	}
	if _, werr := d.cfg.Auditor.Write(context.Background(), audit.Entry{Record: rec}); werr != nil {
		d.cfg.Logger.Error("webhook delivery not recorded", "err", werr)
	}
}

// Sign returns the signature header value of body sent at timestamp ts.
func Sign(key []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header in constant time.
func Verify(key []byte, ts string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(key, ts, body)), []byte(signature))
}

// Event is the JSON payload.
type Event struct {
	Event       string    `json:"event"`
	DeliveredAt time.Time `json:"sent_at"`
	Approval    Summary   `json:"approval"`
}

// Summary is an approval as a webhook tells of it: no arguments.
type Summary struct {
	ID            string    `json:"id"`
	Status        string    `json:"status"`
	Requester     string    `json:"requester"`
	Tool          string    `json:"tool"`
	ToolVersion   int       `json:"tool_version"`
	ArgsSHA256    string    `json:"args_sha256"`
	RiskScore     int       `json:"risk_score"`
	Reasons       []string  `json:"reasons"`
	PolicyVersion int       `json:"policy_version"`
	Needs         []string  `json:"needs"`
	Votes         []string  `json:"votes"` // "+carol", "-dave"
	ExpiresAt     time.Time `json:"expires_at"`
}

func summary(a approval.Approval) Summary {
	s := Summary{ID: a.ID, Status: string(a.Status), Requester: a.Requester, Tool: a.Tool, ToolVersion: a.ToolVersion,
		ArgsSHA256: a.ArgsSHA256, RiskScore: a.Decision.Score, Reasons: a.Decision.Reasons, PolicyVersion: a.Decision.Policy,
		ExpiresAt: a.ExpiresAt, Needs: a.Needs(), Votes: a.Tally()}
	return s
}

func payload(format, event string, a approval.Approval, now time.Time) ([]byte, error) {
	s := summary(a)
	if format != FormatSlack {
		return json.Marshal(Event{Event: event, DeliveredAt: now.UTC(), Approval: s})
	}
	var text string
	switch event {
	case Requested:
		text = fmt.Sprintf("Approval needed: %s asks to call %s (risk %d/100; %s). Needs %s. Decide with `ostiary approvals approve %s --reason …` or `… deny …` before %s.",
			s.Requester, s.Tool, s.RiskScore, strings.Join(s.Reasons, ", "), strings.Join(s.Needs, " and "), s.ID, s.ExpiresAt.Format(time.RFC3339))
	case Decided:
		text = fmt.Sprintf("Approval %s (%s, %s): %s; votes %s.", s.ID, s.Requester, s.Tool, s.Status, strings.Join(s.Votes, " "))
	default:
		text = fmt.Sprintf("Approval %s (%s, %s) expired undecided.", s.ID, s.Requester, s.Tool)
	}
	return json.Marshal(map[string]string{"text": text})
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

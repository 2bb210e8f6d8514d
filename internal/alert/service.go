package alert

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/fault"
)

// Audit events.
const (
	EventRaised       = "alert-raised"
	EventDelivered    = "alert-delivered"
	EventAcknowledged = "alert-acknowledged"
	EventEscalated    = "alert-escalated"
	EventList         = "alert-list"
	EventFeedDropped  = "alert-feed-dropped"
)

// Statuses of an alert.
const (
	Open         = "open"
	Acknowledged = "acknowledged"
)

// Alert is a raised alert as stored.
type Alert struct {
	ID          string         `json:"id"`
	Rule        string         `json:"rule"`
	Kind        string         `json:"kind"`
	Subject     string         `json:"subject"`
	Tool        string         `json:"tool,omitempty"`
	Summary     string         `json:"summary"`
	Facts       map[string]any `json:"facts"`
	Route       string         `json:"route"`
	EscalateTo  string         `json:"escalate_to"`
	Status      string         `json:"status"`
	RaisedAt    time.Time      `json:"raised_at"`
	EscalateAt  time.Time      `json:"escalate_at"`
	EscalatedAt time.Time      `json:"escalated_at,omitzero"`
	AckedBy     string         `json:"acked_by,omitempty"`
	AckedAt     time.Time      `json:"acked_at,omitzero"`
	AckReason   string         `json:"ack_reason,omitempty"`
}

// Store is what the service reads.
type Store interface {
	// Alerts returns alerts, newest first; status "" is any.
	Alerts(ctx context.Context, status string, limit int) ([]Alert, error)
	AlertByID(ctx context.Context, id string) (Alert, error)
	// DueAlerts returns the open alerts not escalated whose escalation
	// time is at or before now.
	DueAlerts(ctx context.Context, now time.Time) ([]Alert, error)
	AlertSeen(ctx context.Context, k SeenKey) (bool, error)
	// RecentSeen calls fn with up to limit seen pairs, newest first.
	RecentSeen(ctx context.Context, limit int, fn func(SeenKey)) error
}

// TxStore is the write side, inside an audit transaction.
type TxStore interface {
	InsertAlert(ctx context.Context, a Alert, seen *SeenKey) error
	AckAlert(ctx context.Context, id, by, reason string, at time.Time) error
	MarkAlertEscalated(ctx context.Context, id string, at time.Time) error
}

// Config configures a Service. Doc, Store, Auditor, Now, Logger and Key
// are required.
type Config struct {
	Doc     *Document
	Store   Store
	Auditor audit.Appender
	Now     func() time.Time
	Logger  *slog.Logger
	Key     []byte // signs webhook deliveries (as approval webhooks are signed)
	// Owner returns a tool's owner label ("" : none).
	Owner func(tool string) string
	// IsService reports whether a user is a service account.
	IsService func(user string) bool
	// SMTPPassword authenticates to the mail server (read from the
	// document's password_file).
	SMTPPassword string
	Client       *http.Client  // webhook deliveries; default: 10 s timeout, no redirects
	Attempts     int           // per delivery; default 4
	Backoff      time.Duration // before the second attempt, doubling; default 1 s
	Queue        int           // deliveries waiting; default 1000 (more fail, on record)
}

// Service raises, delivers, escalates and acknowledges alerts.
type Service struct {
	cfg    Config
	mu     sync.Mutex // serialises raising (the engine, reviews)
	engine *Engine
	out    chan delivery
	done   chan struct{}
	stop   context.CancelFunc
	ctx    context.Context
	once   sync.Once
	qmu    sync.Mutex
	closed bool
}

// New returns a Service and starts its delivery worker.
func New(cfg Config) (*Service, error) {
	if cfg.Doc == nil || cfg.Store == nil || cfg.Auditor == nil || cfg.Now == nil || cfg.Logger == nil || len(cfg.Key) < 32 {
		return nil, errors.New("alert: the service needs rules, a store, an auditor, a clock, a logger and a 32-byte signing key")
	}
	if cfg.Owner == nil {
		cfg.Owner = func(string) string { return "" }
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 4
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 1000
	}
	s := &Service{cfg: cfg, engine: NewEngine(cfg.Doc, cfg.IsService), out: make(chan delivery, cfg.Queue), done: make(chan struct{})}
	s.ctx, s.stop = context.WithCancel(context.Background())
	go s.deliverLoop()
	return s, nil
}

// Load remembers the pairs first-use and egress rules have seen.
func (s *Service) Load(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.Store.RecentSeen(ctx, maxSeen, s.engine.Remember)
}

// Run feeds the rules from feed and escalates what is due every tick,
// until ctx ends. Records the feed dropped (it was full) are counted on
// record, once per tick that saw new drops.
func (s *Service) Run(ctx context.Context, feed *audit.Feed, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var dropped uint64
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-feed.C():
			s.Observe(ctx, r)
		case <-t.C:
			if n := feed.Dropped(); n > dropped {
				s.noteDropped(ctx, n-dropped)
				dropped = n
			}
			if err := s.Escalate(ctx); err != nil {
				s.cfg.Logger.Error("alert escalation", "err", err)
			}
		}
	}
}

func (s *Service) noteDropped(ctx context.Context, n uint64) {
	rec := audit.Record{Event: EventFeedDropped, Outcome: audit.Failed, Reason: "alert-feed-full", Actor: "system",
		Detail: map[string]any{"records": int64(n)}}
	s.cfg.Logger.Warn("alert rules missed records: their queue was full", "records", n)
	if _, err := s.cfg.Auditor.Write(ctx, audit.Entry{Record: rec}); err != nil {
		s.cfg.Logger.Error("alert feed drop not recorded", "err", err)
	}
}

// Observe runs the rules over one record and raises what they find.
func (s *Service) Observe(ctx context.Context, r *audit.Record) {
	s.mu.Lock()
	fs := s.engine.Observe(r)
	s.mu.Unlock()
	for _, f := range fs {
		if _, err := s.Raise(ctx, f); err != nil {
			s.cfg.Logger.Error("alert not raised", "rule", f.Rule, "subject", f.Subject, "err", err)
		}
	}
}

// Raise stores f as an alert (with its record) and queues its delivery
// to the owner's route. A first-use or egress finding already seen (by the
// store) is not raised again: it returns the zero Alert.
func (s *Service) Raise(ctx context.Context, f Finding) (Alert, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Seen != nil {
		seen, err := s.cfg.Store.AlertSeen(ctx, *f.Seen)
		if err != nil {
			return Alert{}, err
		}
		if seen {
			s.engine.Remember(*f.Seen)
			return Alert{}, nil
		}
	}
	now := s.cfg.Now().UTC()
	a := Alert{ID: newID(), Rule: f.Rule, Kind: f.Kind, Subject: f.Subject, Tool: f.Tool, Summary: f.Summary, Facts: f.Facts,
		Route: s.routeFor(f.Tool), EscalateTo: s.cfg.Doc.EscalateTo, Status: Open, RaisedAt: now,
		EscalateAt: now.Add(time.Duration(s.cfg.Doc.EscalateAfter))}
	if a.Facts == nil {
		a.Facts = map[string]any{}
	}
	rec := audit.Record{Time: now, Event: EventRaised, Outcome: audit.Success, Actor: "system", Target: "alert:" + a.ID,
		Detail: map[string]any{"rule": a.Rule, "kind": a.Kind, "subject": a.Subject, "route": a.Route, "summary": a.Summary,
			"escalate_at": audit.FormatTime(a.EscalateAt)}}
	if a.Tool != "" {
		rec.Detail["tool"] = a.Tool
	}
	_, err := s.cfg.Auditor.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
		ts, ok := tx.(TxStore)
		if !ok {
			return fmt.Errorf("alert: store transaction %T lacks alert operations", tx)
		}
		return ts.InsertAlert(ctx, a, f.Seen)
	}})
	if err != nil {
		return Alert{}, err
	}
	if f.Seen != nil {
		s.engine.Remember(*f.Seen)
	}
	s.queue(a, a.Route, EventRaised)
	return a, nil
}

// routeFor is the route of the tool's owner, else the default route.
func (s *Service) routeFor(tool string) string {
	if tool != "" {
		if owner := s.cfg.Owner(tool); owner != "" {
			if _, ok := s.cfg.Doc.route(owner); ok {
				return owner
			}
		}
	}
	return s.cfg.Doc.DefaultRoute
}

// Escalate sends every open alert past its escalation time to the
// escalation route, once, on record.
func (s *Service) Escalate(ctx context.Context) error {
	now := s.cfg.Now().UTC()
	due, err := s.cfg.Store.DueAlerts(ctx, now)
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range due {
		rec := audit.Record{Time: now, Event: EventEscalated, Outcome: audit.Success, Actor: "system", Target: "alert:" + a.ID,
			Detail: map[string]any{"rule": a.Rule, "route": a.EscalateTo, "raised_at": audit.FormatTime(a.RaisedAt)}}
		_, err := s.cfg.Auditor.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
			ts, ok := tx.(TxStore)
			if !ok {
				return fmt.Errorf("alert: store transaction %T lacks alert operations", tx)
			}
			return ts.MarkAlertEscalated(ctx, a.ID, now)
		}})
		if err != nil {
			if !fault.Is(err, fault.Conflict) { // acknowledged meanwhile: its record says so
				errs = append(errs, err)
			}
			continue
		}
		a.EscalatedAt = now
		s.queue(a, a.EscalateTo, EventEscalated)
	}
	return errors.Join(errs...)
}

var idRE = regexp.MustCompile(`^al_[0-9a-f]{20}$`)

// ValidID reports whether id has the form of an alert id.
func ValidID(id string) bool { return idRE.MatchString(id) }

func newID() string {
	var b [10]byte
	rand.Read(b[:])
	return "al_" + hex.EncodeToString(b[:])
}

// List returns alerts (status "", open or acknowledged), newest first; it
// needs read-audit.
func (s *Service) List(ctx context.Context, p *authn.Principal, status string, limit int) ([]Alert, error) {
	rec := p.Record(EventList, "")
	rec.Detail = map[string]any{"status": status}
	if !p.Allows(authz.ReadAudit, authz.All) {
		return nil, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Forbidden, "permission denied: this needs the %s grant", authz.ReadAudit))
	}
	if status != "" && status != Open && status != Acknowledged {
		return nil, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Invalid, "status: want open or acknowledged"))
	}
	return audit.Read(ctx, s.cfg.Auditor, rec, func() ([]Alert, error) { return s.cfg.Store.Alerts(ctx, status, limit) })
}

// MaxReason bounds an acknowledgement's reason.
const MaxReason = 500

// Ack acknowledges an open alert: it stops its escalation. It needs
// read-audit and a reason.
func (s *Service) Ack(ctx context.Context, p *authn.Principal, id, reason string) (Alert, error) {
	target := "alert:?"
	if ValidID(id) {
		target = "alert:" + id
	}
	rec := p.Record(EventAcknowledged, target)
	reason = strings.TrimSpace(reason)
	rec.Detail = map[string]any{"reason": reason}
	switch {
	case !p.Allows(authz.ReadAudit, authz.All):
		return Alert{}, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Forbidden, "permission denied: this needs the %s grant", authz.ReadAudit))
	case !ValidID(id):
		rec.Detail["reason"] = ""
		return Alert{}, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Invalid, "%q is not an alert id (al_ and 20 hex digits)", clip(id)))
	case reason == "" || len(reason) > MaxReason:
		return Alert{}, audit.Refuse(ctx, s.cfg.Auditor, rec, fault.New(fault.Invalid, "reason: 1 to %d characters, required", MaxReason))
	}
	now := s.cfg.Now().UTC()
	var a Alert
	_, err := s.cfg.Auditor.Write(ctx, audit.Entry{Record: rec, Apply: func(ctx context.Context, tx audit.Tx, _ *audit.Record) error {
		ts, ok := tx.(TxStore)
		if !ok {
			return fmt.Errorf("alert: store transaction %T lacks alert operations", tx)
		}
		if err := ts.AckAlert(ctx, id, p.User, reason, now); err != nil {
			return err
		}
		return nil
	}})
	if err != nil {
		return Alert{}, err
	}
	if a, err = s.cfg.Store.AlertByID(ctx, id); err != nil {
		return Alert{}, err
	}
	return a, nil
}

// Close delivers what is queued for a short grace, then drops the rest
// on record.
func (s *Service) Close() {
	s.once.Do(func() {
		s.qmu.Lock()
		s.closed = true
		close(s.out)
		s.qmu.Unlock()
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			s.stop()
			<-s.done
		}
		s.stop()
	})
}

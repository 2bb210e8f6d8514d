package alert

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/webhook"
)

// Channels of a route.
const (
	ChannelWebhook = "webhook"
	ChannelSlack   = "slack"
	ChannelEmail   = "email"
)

type delivery struct {
	alert Alert
	route string
	event string // EventRaised or EventEscalated
}

// Payload is the JSON body of a webhook delivery. It carries what the
// alert record carries: no argument values, no secrets.
type Payload struct {
	Event  string    `json:"event"`
	SentAt time.Time `json:"sent_at"`
	Alert  Alert     `json:"alert"`
}

// queue hands a delivery to the worker without waiting: a full or closed
// queue fails it, on record.
func (s *Service) queue(a Alert, route, event string) {
	d := delivery{alert: a, route: route, event: event}
	s.qmu.Lock()
	queued := false
	if !s.closed {
		select {
		case s.out <- d:
			queued = true
		default:
		}
	}
	s.qmu.Unlock()
	if !queued {
		s.record(d, "", "", 0, errors.New("the delivery queue is full or closed"))
	}
}

func (s *Service) deliverLoop() {
	defer close(s.done)
	for d := range s.out {
		r, _ := s.cfg.Doc.route(d.route)
		channel, host := r.channel()
		if s.ctx.Err() != nil {
			s.record(d, channel, host, 0, errors.New("the server stopped before delivery"))
			continue
		}
		n, err := s.deliver(d, r)
		s.record(d, channel, host, n, err)
	}
}

// channel names a route's channel and the host it reaches (never a URL's
// path, which is often its credential, nor an address).
func (r Route) channel() (string, string) {
	switch {
	case r.Webhook != "":
		return ChannelWebhook, hostOf(r.Webhook)
	case r.Slack != "":
		return ChannelSlack, hostOf(r.Slack)
	case len(r.Email) > 0:
		return ChannelEmail, ""
	}
	return "", ""
}

func hostOf(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Host
	}
	return ""
}

// deliver tries up to Attempts times with exponential backoff: again
// after a network error, a 5xx or 429, or a mail server's failure.
func (s *Service) deliver(d delivery, r Route) (int, error) {
	wait := s.cfg.Backoff
	for attempt := 1; ; attempt++ {
		retry, err := s.send(d, r)
		if err == nil || !retry || attempt == s.cfg.Attempts {
			return attempt, err
		}
		select {
		case <-time.After(wait):
		case <-s.ctx.Done():
			return attempt, err
		}
		wait *= 2
	}
}

func (s *Service) send(d delivery, r Route) (retry bool, err error) {
	switch {
	case r.Webhook != "":
		body, err := json.Marshal(Payload{Event: d.event, SentAt: s.cfg.Now().UTC(), Alert: d.alert})
		if err != nil {
			return false, err
		}
		return s.post(r.Webhook, d, body)
	case r.Slack != "":
		body, err := json.Marshal(map[string]string{"text": text(d)})
		if err != nil {
			return false, err
		}
		return s.post(strings.TrimPrefix(r.Slack, "slack:"), d, body)
	case len(r.Email) > 0:
		return true, s.mail(d, r.Email)
	}
	return false, errors.New("the route has no channel")
}

// text is the human form of a delivery.
func text(d delivery) string {
	a := d.alert
	head := "Alert"
	if d.event == EventEscalated {
		head = "ESCALATED: alert not acknowledged"
	}
	return fmt.Sprintf("%s %s (rule %s, %s): %s. Acknowledge with `ostiary alerts ack %s --reason …` before %s.",
		head, a.ID, a.Rule, a.Kind, a.Summary, a.ID, a.EscalateAt.Format(time.RFC3339))
}

func (s *Service) post(u string, d delivery, body []byte) (bool, error) {
	ts := strconv.FormatInt(s.cfg.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return false, errors.New("the route's URL is not usable")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ostiary-alert")
	req.Header.Set(webhook.HeaderEvent, d.event)
	req.Header.Set(webhook.HeaderDelivery, d.alert.ID)
	req.Header.Set(webhook.HeaderTimestamp, ts)
	req.Header.Set(webhook.HeaderSignature, webhook.Sign(s.cfg.Key, ts, body))
	resp, err := s.cfg.Client.Do(req)
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

// mail sends the alert by SMTP: STARTTLS (TLS 1.2+, verified) when the
// document asks for it, PLAIN authentication if configured.
func (s *Service) mail(d delivery, to []string) error {
	cfg := s.cfg.Doc.SMTP
	host, _, _ := net.SplitHostPort(cfg.Addr)
	conn, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(s.ctx, "tcp", cfg.Addr)
	if err != nil {
		return errors.New("cannot reach the mail server")
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return errors.New("the mail server did not greet")
	}
	defer c.Close()
	if cfg.StartTLS {
		if err := c.StartTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}); err != nil {
			return errors.New("STARTTLS with the mail server failed")
		}
	}
	if cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", cfg.Username, s.cfg.SMTPPassword, host)); err != nil {
			return errors.New("the mail server refused the credentials")
		}
	}
	if err := c.Mail(cfg.From); err != nil {
		return fmt.Errorf("the mail server refused the sender: %s", smtpCode(err))
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt); err != nil {
			return fmt.Errorf("the mail server refused a recipient: %s", smtpCode(err))
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("the mail server refused the message: %s", smtpCode(err))
	}
	if _, err := w.Write(message(cfg.From, to, d, s.cfg.Now())); err != nil {
		return errors.New("the message was cut off")
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("the mail server refused the message: %s", smtpCode(err))
	}
	return c.Quit()
}

// smtpCode is the status code of a mail server's refusal (its text may
// echo what it was sent).
func smtpCode(err error) string {
	if s := err.Error(); len(s) >= 3 {
		if _, cerr := strconv.Atoi(s[:3]); cerr == nil {
			return s[:3]
		}
	}
	return "no reply"
}

// message is an RFC 5322 message; header values carry no line breaks.
func message(from string, to []string, d delivery, now time.Time) []byte {
	oneLine := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' {
				return ' '
			}
			return r
		}, s)
	}
	subject := fmt.Sprintf("[ostiary] %s: %s", d.alert.Rule, d.alert.Subject)
	if d.event == EventEscalated {
		subject = "[ostiary] ESCALATED " + d.alert.Rule + ": " + d.alert.Subject
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s.%s@ostiary>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nX-Ostiary-Event: %s\r\n\r\n",
		from, strings.Join(to, ", "), oneLine(subject), now.UTC().Format(time.RFC1123Z), d.alert.ID, d.event, d.event)
	body := strings.ReplaceAll(oneLine(text(d)), "\n.", "\n..")
	b.WriteString(body + "\r\n")
	return b.Bytes()
}

// record writes a delivery's outcome.
func (s *Service) record(d delivery, channel, host string, attempts int, err error) {
	rec := audit.Record{Event: EventDelivered, Outcome: audit.Success, Actor: "system", Target: "alert:" + d.alert.ID,
		Detail: map[string]any{"route": d.route, "channel": channel, "attempts": attempts, "escalation": d.event == EventEscalated}}
	if host != "" {
		rec.Detail["host"] = host
	}
	if err != nil {
		rec.Outcome, rec.Reason = audit.Failed, "alert-undelivered"
		rec.Detail["error"] = err.Error()
		s.cfg.Logger.Warn("alert not delivered", "alert", d.alert.ID, "route", d.route, "channel", channel, "attempts", attempts, "err", err)
	}
	if _, werr := s.cfg.Auditor.Write(context.Background(), audit.Entry{Record: rec}); werr != nil {
		s.cfg.Logger.Error("alert delivery not recorded", "err", werr)
	}
}

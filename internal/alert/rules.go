// Package alert tells owners what the audit log shows: rules over sliding
// windows of the records as they are written (spikes of denials or
// failures against their own baseline, unusual call volume per key, a
// tool's first use by a principal, a new egress destination, a redacted
// secret echo, service accounts outside their hours). Each alert is
// stored, delivered to its owner's route (webhook, Slack-compatible
// webhook or e-mail), must be acknowledged, and escalates to a second
// route when it is not in time; raised, delivered, acknowledged and
// escalated are audit records. See DESIGN.md.
package alert

import (
	"bytes"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/ostiary/ostiary/internal/config"
)

// Rule kinds.
const (
	KindDenialSpike    = "denial-spike"    // denied calls per tool, upstream or user, against their baseline
	KindExceptionSpike = "exception-spike" // failed calls (outcome error) per tool, upstream or user
	KindVolume         = "volume"          // calls per API key, against its baseline
	KindFirstUse       = "first-use"       // a principal's first call of a tool
	KindEgress         = "egress"          // a host never seen before in the arguments of an egress tool
	KindSecretEcho     = "secret-echo"     // an upstream echoed an injected secret (redacted)
	KindOffHours       = "off-hours"       // a service account called a tool outside its hours
	KindReviewOverdue  = "review-overdue"  // an access review item not attested by its due time (raised by reviews)
)

var ruleKinds = []string{KindDenialSpike, KindExceptionSpike, KindVolume, KindFirstUse, KindEgress, KindSecretEcho, KindOffHours}

// Limits of a document.
const (
	MaxSource = 256 << 10
	MaxRules  = 200
	MaxRoutes = 100
)

// Duration is a YAML duration ("5m", "1h30m").
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: want a duration such as 5m or 1h", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration such as 5m or 1h", n.Line, clip(s))
	}
	*d = Duration(v)
	return nil
}

// Document is an alert rules file (serve --alerts FILE).
type Document struct {
	Version int `yaml:"version"`
	// DefaultRoute receives alerts whose tool has no owner route.
	DefaultRoute string `yaml:"default_route"`
	// EscalateTo receives alerts not acknowledged within EscalateAfter.
	EscalateTo    string   `yaml:"escalate_to"`
	EscalateAfter Duration `yaml:"escalate_after"`
	SMTP          *SMTP    `yaml:"smtp"`
	Routes        []Route  `yaml:"routes"`
	Rules         []Rule   `yaml:"rules"`
}

// SMTP is the mail server e-mail routes send through.
type SMTP struct {
	Addr string `yaml:"addr"` // host:port
	From string `yaml:"from"`
	// Username and PasswordFile authenticate (PLAIN); the password is
	// read from the file, never written in this document.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	// StartTLS is required unless the server is on a loopback address.
	StartTLS bool `yaml:"starttls"`
}

// Route is where alerts go: exactly one of Webhook, Slack or Email.
type Route struct {
	// Name is an owner label (catalog label owner) or any name the
	// document refers to.
	Name    string   `yaml:"name"`
	Webhook string   `yaml:"webhook"` // signed JSON POST
	Slack   string   `yaml:"slack"`   // Slack-compatible incoming webhook
	Email   []string `yaml:"email"`
	line    int
}

// Rule is one alert rule.
type Rule struct {
	Name string `yaml:"name"`
	Kind string `yaml:"kind"`
	// By is what spikes are counted per: tool, upstream or user
	// (denial-spike, exception-spike).
	By string `yaml:"by"`
	// Window is the sliding window counted (spikes, volume); Baseline the
	// span before it the window is compared with.
	Window   Duration `yaml:"window"`
	Baseline Duration `yaml:"baseline"`
	// Factor: the window must hold more than Factor times what the
	// baseline predicts for it; and at least Min events.
	Factor float64 `yaml:"factor"`
	Min    int     `yaml:"min"`
	// Tools limits the rule to tools matching these globs (empty: all).
	Tools []string `yaml:"tools"`
	// Hours ("08:00-18:00"), Days (mon…sun) and Timezone are a service
	// account's working time (off-hours).
	Hours    string   `yaml:"hours"`
	Days     []string `yaml:"days"`
	Timezone string   `yaml:"timezone"`
	// Cooldown: after an alert, the same rule and subject stay quiet this
	// long (default: the window, or 1h).
	Cooldown Duration `yaml:"cooldown"`
	line     int

	from, to int // minutes of the day, off-hours
	days     [7]bool
	loc      *time.Location
}

var nameRE = regexp.MustCompile(`^[\pL\pN][\pL\pN ._@-]{0,99}$`)

// Parse reads an alert rules document. YAML is decoded strictly: unknown
// fields and repeated keys are refused, and every error names its line.
func Parse(src []byte) (*Document, error) {
	if len(src) > MaxSource {
		return nil, fmt.Errorf("alerts: a rules file is at most %d KiB", MaxSource>>10)
	}
	var doc Document
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("alerts: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra any
	if dec.Decode(&extra) == nil {
		return nil, errors.New("alerts: one document per file")
	}
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, fmt.Errorf("alerts: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	lines(&root, "routes", func(i, l int) {
		if i < len(doc.Routes) {
			doc.Routes[i].line = l
		}
	})
	lines(&root, "rules", func(i, l int) {
		if i < len(doc.Rules) {
			doc.Rules[i].line = l
		}
	})
	if err := doc.check(); err != nil {
		return nil, err
	}
	return &doc, nil
}

// lines calls fn with the index and line of each item of the top-level
// sequence key.
func lines(root *yaml.Node, key string, fn func(i, line int)) {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.SequenceNode {
			for j, item := range m.Content[i+1].Content {
				fn(j, item.Line)
			}
		}
	}
}

func (d *Document) check() error {
	if d.Version != 1 {
		return fmt.Errorf("alerts: version: want 1 (the document format), got %d", d.Version)
	}
	if len(d.Rules) > MaxRules || len(d.Routes) > MaxRoutes {
		return fmt.Errorf("alerts: at most %d rules and %d routes", MaxRules, MaxRoutes)
	}
	names := map[string]bool{}
	email := false
	for i := range d.Routes {
		r := &d.Routes[i]
		where := fmt.Sprintf("alerts: line %d: route %d", r.line, i+1)
		if err := r.check(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if names[r.Name] {
			return fmt.Errorf("%s: name %q used twice", where, r.Name)
		}
		names[r.Name] = true
		email = email || len(r.Email) > 0
	}
	switch {
	case d.DefaultRoute == "":
		return errors.New("alerts: default_route: required (where alerts of tools without an owner route go)")
	case !names[d.DefaultRoute]:
		return fmt.Errorf("alerts: default_route: no route is named %q", clip(d.DefaultRoute))
	case d.EscalateTo == "":
		return errors.New("alerts: escalate_to: required (where unacknowledged alerts go)")
	case !names[d.EscalateTo]:
		return fmt.Errorf("alerts: escalate_to: no route is named %q", clip(d.EscalateTo))
	case d.EscalateAfter == 0:
		d.EscalateAfter = Duration(30 * time.Minute)
	}
	if d.EscalateAfter < Duration(time.Minute) {
		return errors.New("alerts: escalate_after: at least 1m")
	}
	if email {
		if err := d.SMTP.check(); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for i := range d.Rules {
		r := &d.Rules[i]
		where := fmt.Sprintf("alerts: line %d: rule %d", r.line, i+1)
		if r.Name != "" {
			where = fmt.Sprintf("alerts: line %d: rule %q", r.line, clip(r.Name))
		}
		if seen[r.Name] {
			return fmt.Errorf("%s: name used twice", where)
		}
		seen[r.Name] = true
		if err := r.check(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
	}
	return nil
}

func (r *Route) check() error {
	if !nameRE.MatchString(r.Name) {
		return errors.New("name: 1–100 letters, digits, spaces and . _ @ - (an owner label, say)")
	}
	n := 0
	for _, u := range []string{r.Webhook, r.Slack} {
		if u == "" {
			continue
		}
		n++
		if _, err := config.ParseWebhook(u); err != nil {
			return err
		}
	}
	if len(r.Email) > 0 {
		n++
		if len(r.Email) > 20 {
			return errors.New("email: at most 20 addresses")
		}
		for _, a := range r.Email {
			if addr, err := mail.ParseAddress(a); err != nil || addr.Address != a || strings.ContainsAny(a, "\r\n") {
				return fmt.Errorf("email: %q is not a plain address such as ops@example.com", clip(a))
			}
		}
	}
	if n != 1 {
		return errors.New("want exactly one of webhook, slack or email")
	}
	return nil
}

func (s *SMTP) check() error {
	if s == nil || s.Addr == "" || s.From == "" {
		return errors.New("alerts: smtp: addr and from are required for e-mail routes")
	}
	if addr, err := mail.ParseAddress(s.From); err != nil || addr.Address != s.From {
		return errors.New("alerts: smtp: from: a plain address such as ostiary@example.com")
	}
	host, _, err := splitHostPort(s.Addr)
	if err != nil {
		return fmt.Errorf("alerts: smtp: addr: %v", err)
	}
	if !s.StartTLS && !loopback(host) {
		return errors.New("alerts: smtp: starttls: required for a server not on a loopback address")
	}
	if (s.Username == "") != (s.PasswordFile == "") {
		return errors.New("alerts: smtp: username and password_file go together")
	}
	return nil
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

func (r *Rule) check() error {
	if !nameRE.MatchString(r.Name) {
		return errors.New("name: 1–100 letters, digits, spaces and . _ @ -")
	}
	if !slices.Contains(ruleKinds, r.Kind) {
		return fmt.Errorf("kind: want one of %s", strings.Join(ruleKinds, ", "))
	}
	for _, g := range r.Tools {
		if g == "" || len(g) > 200 {
			return errors.New("tools: globs of 1–200 characters")
		}
	}
	spike := r.Kind == KindDenialSpike || r.Kind == KindExceptionSpike || r.Kind == KindVolume
	switch {
	case spike && r.Kind != KindVolume && r.By != "tool" && r.By != "upstream" && r.By != "user":
		return errors.New("by: want tool, upstream or user")
	case r.Kind == KindVolume && r.By != "" && r.By != "key":
		return errors.New("by: a volume rule counts per key")
	case !spike && (r.By != "" || r.Window != 0 || r.Baseline != 0 || r.Factor != 0 || r.Min != 0):
		return errors.New("by, window, baseline, factor and min apply to spike and volume rules only")
	case r.Kind != KindOffHours && (r.Hours != "" || len(r.Days) > 0 || r.Timezone != ""):
		return errors.New("hours, days and timezone apply to off-hours rules only")
	}
	if spike {
		if r.Window == 0 {
			r.Window = Duration(5 * time.Minute)
		}
		if r.Baseline == 0 {
			r.Baseline = Duration(time.Hour)
		}
		if r.Factor == 0 {
			r.Factor = 3
		}
		if r.Min == 0 {
			r.Min = 10
		}
		switch {
		case r.Window < Duration(time.Second) || r.Window > Duration(24*time.Hour):
			return errors.New("window: 1s to 24h")
		case r.Baseline < r.Window || r.Baseline > Duration(30*24*time.Hour):
			return errors.New("baseline: at least the window, at most 720h")
		case r.Factor < 1 || r.Factor > 1000:
			return errors.New("factor: 1 to 1000")
		case r.Min < 1 || r.Min > 1_000_000:
			return errors.New("min: 1 to 1000000")
		}
	}
	if r.Cooldown == 0 {
		r.Cooldown = r.Window
		if r.Cooldown == 0 {
			r.Cooldown = Duration(time.Hour)
		}
	}
	if r.Kind == KindOffHours {
		return r.checkHours()
	}
	return nil
}

func (r *Rule) checkHours() error {
	from, to, ok := strings.Cut(r.Hours, "-")
	var err error
	if r.from, err = minutes(from); !ok || err != nil {
		return errors.New(`hours: want "HH:MM-HH:MM", such as "08:00-18:00"`)
	}
	if r.to, err = minutes(to); err != nil || r.to <= r.from {
		return errors.New(`hours: want "HH:MM-HH:MM" with the end after the start`)
	}
	if len(r.Days) == 0 {
		r.Days = []string{"mon", "tue", "wed", "thu", "fri"}
	}
	for _, d := range r.Days {
		i := slices.Index(dayNames, d)
		if i < 0 {
			return errors.New("days: want mon, tue, wed, thu, fri, sat or sun")
		}
		r.days[i] = true
	}
	tz := r.Timezone
	if tz == "" {
		tz = "UTC"
	}
	if r.loc, err = time.LoadLocation(tz); err != nil {
		return fmt.Errorf("timezone: %q is not a known time zone", clip(tz))
	}
	return nil
}

// minutes reads "HH:MM" (24:00 allowed as an end).
func minutes(s string) (int, error) {
	var h, m int
	if len(s) != 5 || s[2] != ':' {
		return 0, errors.New("bad time")
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &h, &m); err != nil || h > 24 || m > 59 || (h == 24 && m != 0) {
		return 0, errors.New("bad time")
	}
	return h*60 + m, nil
}

// working reports whether t falls in the rule's hours.
func (r *Rule) working(t time.Time) bool {
	lt := t.In(r.loc)
	m := lt.Hour()*60 + lt.Minute()
	return r.days[lt.Weekday()] && m >= r.from && m < r.to
}

// route returns the route named name.
func (d *Document) route(name string) (Route, bool) {
	for _, r := range d.Routes {
		if r.Name == name {
			return r, true
		}
	}
	return Route{}, false
}

func clip(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

package alert

import (
	"strings"
	"testing"
)

const head = "version: 1\ndefault_route: security\nescalate_to: oncall\nroutes:\n  - {name: security, webhook: \"https://hooks.example.com/a\"}\n  - {name: oncall, slack: \"https://hooks.slack.com/services/T/B/X\"}\n"

// Every mistake is refused with a message naming its line, and nothing
// ambiguous is accepted: unknown fields, repeated keys, two channels on
// one route, a route nobody defined, mail without TLS to a remote server.
func TestParseRefuses(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{head + "rules:\n  - {name: x, kind: first-use, colour: red}\n", "line 8: field colour not found"},
		{head + "rules:\n  - name: x\n    kind: first-use\n    kind: egress\n", "line 9"},
		{head + "rules:\n  - {name: x, kind: spike}\n", "line 8: rule \"x\": kind: want one of"},
		{head + "rules:\n  - {name: x, kind: denial-spike, by: colour}\n", "line 8: rule \"x\": by: want tool, upstream or user"},
		{head + "rules:\n  - {name: x, kind: first-use, window: 5m}\n", "apply to spike and volume rules only"},
		{head + "rules:\n  - {name: x, kind: denial-spike, by: tool, window: 1h, baseline: 5m}\n", "baseline: at least the window"},
		{head + "rules:\n  - {name: x, kind: denial-spike, by: tool, window: soon}\n", "line 8: \"soon\" is not a duration"},
		{head + "rules:\n  - {name: x, kind: off-hours, hours: \"18:00-08:00\"}\n", "hours"},
		{head + "rules:\n  - {name: x, kind: off-hours, hours: \"08:00-18:00\", timezone: Mars/Base}\n", "timezone"},
		{head + "rules:\n  - {name: x, kind: first-use}\n  - {name: x, kind: egress}\n", "line 9: rule \"x\": name used twice"},
		{strings.Replace(head, "default_route: security", "default_route: nobody", 1), "default_route: no route is named \"nobody\""},
		{strings.Replace(head, "escalate_to: oncall\n", "", 1), "escalate_to: required"},
		{head + "  - {name: both, webhook: \"https://a.example.com\", slack: \"https://b.example.com\"}\n", "line 7: route 3: want exactly one of"},
		{head + "  - {name: plain, webhook: \"http://hooks.example.com/x\"}\n", "line 7: route 3"},
		{head + "  - {name: mail, email: [\"ops@example.com\"]}\nsmtp: {addr: \"mail.example.com:25\", from: \"ostiary@example.com\"}\n", "starttls: required"},
		{head + "  - {name: mail, email: [\"ops@example.com\\r\\nBcc: x@evil.example\"]}\nsmtp: {addr: \"127.0.0.1:25\", from: \"o@example.com\"}\n", "not a plain address"},
		{head + "  - {name: mail, email: [\"ops@example.com\"]}\n", "smtp: addr and from are required"},
		{"version: 2\n", "version: want 1"},
		{head + "---\nversion: 1\n", "one document per file"},
	} {
		_, err := Parse([]byte(c.src))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q:\n  got %v\n want …%s…", c.src[len(head)-min(len(head), len(c.src)):], err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "/services/T/B/X") {
			t.Errorf("an error repeats a webhook URL's path: %v", err)
		}
	}
}

func TestParseDefaults(t *testing.T) {
	d, err := Parse([]byte(head + "rules:\n  - {name: d, kind: denial-spike, by: user}\n  - {name: n, kind: off-hours, hours: \"07:30-19:00\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := d.Rules[0]
	if r.Window != Duration(5*60e9) || r.Baseline != Duration(3600e9) || r.Factor != 3 || r.Min != 10 || r.Cooldown != r.Window {
		t.Errorf("spike defaults: %+v", r)
	}
	if n := d.Rules[1]; n.from != 450 || n.to != 1140 || !n.days[1] || n.days[0] || n.loc.String() != "UTC" {
		t.Errorf("off-hours defaults: %+v", n)
	}
	if d.EscalateAfter != Duration(30*60e9) {
		t.Errorf("escalate_after default: %v", d.EscalateAfter)
	}
}

// FuzzParse: any input is parsed or refused, never a panic; an accepted
// document has its routes resolvable.
func FuzzParse(f *testing.F) {
	f.Add([]byte(head + "rules:\n  - {name: x, kind: first-use}\n"))
	f.Add([]byte(spikeRules))
	f.Add([]byte(otherRules))
	f.Add([]byte("version: 1\nrules: [{name: a, kind: off-hours, hours: \"24:00-24:00\"}]"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, src []byte) {
		d, err := Parse(src)
		if err != nil {
			return
		}
		if _, ok := d.route(d.DefaultRoute); !ok {
			t.Fatalf("accepted with no default route: %q", src)
		}
		if _, ok := d.route(d.EscalateTo); !ok {
			t.Fatalf("accepted with no escalation route: %q", src)
		}
	})
}

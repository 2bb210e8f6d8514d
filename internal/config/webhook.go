package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Webhook is one approval webhook receiver (--approval-webhook).
type Webhook struct {
	URL   string
	Slack bool // "slack:URL": Slack's message format, not Ostiary's event object
}

// ParseWebhook reads "URL" or "slack:URL". The URL must be https, or http
// to a loopback address. Errors do not repeat the URL: a webhook URL's
// path is often its credential.
func ParseWebhook(s string) (Webhook, error) {
	t := Webhook{URL: s}
	if rest, ok := strings.CutPrefix(s, "slack:"); ok {
		t = Webhook{URL: rest, Slack: true}
	}
	u, err := url.Parse(t.URL)
	if err != nil || u.Host == "" || u.User != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return t, errors.New("want https://host/path (or slack:https://…)")
	}
	if u.Scheme == "http" {
		ip := net.ParseIP(u.Hostname())
		if ip == nil || !ip.IsLoopback() {
			return t, fmt.Errorf("plain http only to a loopback address; use https for %s", u.Hostname())
		}
	}
	return t, nil
}

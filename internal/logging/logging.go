// Package logging is the operational log's plumbing (never the audit log):
// a handler that gives every line of a request its request id and keeps
// credentials out, the demotion of a library's routine chatter to debug,
// and the request id carried in a context.
package logging

import (
	"context"
	"io"
	"log/slog"
	"regexp"
)

type requestIDKey struct{}

// WithRequestID returns ctx carrying the request's correlation id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID is the correlation id ctx carries, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// New is the operational logger writing to w: json or text, at level.
func New(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(Wrap(h))
}

// Wrap returns a handler over h that adds request_id from the record's
// context to a line that does not name one, and replaces credentials in
// the message and in every string value: the secret part of an Ostiary API
// key (ost_<id>_<secret> keeps its public id) and the credential of an
// Authorization-style "Bearer"/"Basic" value.
func Wrap(h slog.Handler) slog.Handler {
	if w, ok := h.(*handler); ok {
		return w
	}
	return &handler{inner: h}
}

type handler struct {
	inner  slog.Handler
	hasID  bool // a request_id attribute was added with WithAttrs
	demote bool // a library's handler: see Library
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	if h.demote && l <= slog.LevelInfo {
		return h.inner.Enabled(ctx, l) || h.inner.Enabled(ctx, slog.LevelDebug)
	}
	return h.inner.Enabled(ctx, l)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Scrub(r.Message), r.PC)
	hasID := h.hasID
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "request_id" {
			hasID = true
		}
		out.AddAttrs(scrubAttr(a))
		return true
	})
	if h.demote && r.Level <= slog.LevelInfo {
		// A library's routine line (the MCP SDK's "server session
		// connected", with an empty session id for every stateless request).
		out.Level = slog.LevelDebug
		if !h.inner.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
	}
	if !hasID {
		if id := RequestID(ctx); id != "" {
			out.AddAttrs(slog.String("request_id", id))
		}
	}
	return h.inner.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = scrubAttr(a)
		if a.Key == "request_id" {
			c.hasID = true
		}
	}
	c.inner = h.inner.WithAttrs(clean)
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	c := *h
	c.inner = h.inner.WithGroup(name)
	return &c
}

// Library is the handler to give a library (the MCP SDK): as Wrap, and
// its info lines are debug lines: routine session chatter (134 of 189
// lines of a short run, most with an empty session id), written without
// the request's context so without its id. Warnings and errors keep their
// level.
func Library(h slog.Handler) slog.Handler {
	w := *Wrap(h).(*handler)
	w.demote = true
	return &w
}

var (
	apiKeyRE = regexp.MustCompile(`\b(ost_[a-z0-9]+_)[A-Za-z0-9]+`)
	authRE   = regexp.MustCompile(`(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]+`)
)

// Scrub replaces the credentials in s (see Wrap).
func Scrub(s string) string {
	s = authRE.ReplaceAllString(s, "${1}${2}[redacted]")
	return apiKeyRE.ReplaceAllString(s, "${1}[redacted]")
}

func scrubAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Scrub(v.String()))
	case slog.KindGroup:
		g := v.Group()
		out := make([]slog.Attr, len(g))
		for i, x := range g {
			out[i] = scrubAttr(x)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, Scrub(err.Error()))
		}
		if s, ok := v.Any().(interface{ String() string }); ok {
			return slog.String(a.Key, Scrub(s.String()))
		}
		if ss, ok := v.Any().([]string); ok {
			out := make([]string, len(ss))
			for i, s := range ss {
				out[i] = Scrub(s)
			}
			return slog.Any(a.Key, out)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// Package tracing is Ostiary's OpenTelemetry tracing: one span per stage
// of a governed request (authenticate, authorize, policy, approval wait,
// upstream call, audit) under one server span per MCP request, exported
// by OTLP over HTTP (--otlp-endpoint).
//
// Off by default, and then free: a nil *Tracer starts nothing, returns
// the context it was given and a Span whose methods do nothing, so the
// hot path pays one nil check per stage.
//
// A request's trace id is its correlation id (the X-Request-ID the
// gateway settled on, which is also in every audit record) when that is a
// 32-digit lowercase hex string, as the ids Ostiary mints and a W3C
// traceparent's trace id are; any other correlation id (a client's own
// X-Request-ID) is hashed to a trace id (TraceIDOf), and every server span
// carries the correlation id itself as ostiary.correlation_id. A client's
// traceparent whose trace id is the request's becomes the server span's
// remote parent: the client's trace continues through Ostiary. Spans
// carry no argument, no credential and no user: stage names, the method,
// the resolved tool and upstream, the decision, the audit seq.
package tracing

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/ostiary/ostiary/internal/config"
)

// Stage span names.
const (
	SpanAuthenticate = "authenticate"
	SpanAuthorize    = "authorize"
	SpanPolicy       = "policy"
	SpanApproval     = "approval wait"
	SpanUpstream     = "upstream call"
	SpanAudit        = "audit"
)

// Attribute keys.
const (
	AttrCorrelationID = attribute.Key("ostiary.correlation_id")
	AttrMethod        = attribute.Key("mcp.method.name")
	AttrTool          = attribute.Key("gen_ai.tool.name")
	AttrUpstream      = attribute.Key("ostiary.upstream")
	AttrDecision      = attribute.Key("ostiary.decision")
	AttrRisk          = attribute.Key("ostiary.risk_score")
	AttrEvent         = attribute.Key("ostiary.audit.event")
	AttrSeq           = attribute.Key("ostiary.audit.seq")
	AttrAttempt       = attribute.Key("ostiary.attempt")
	AttrOutcome       = attribute.Key("ostiary.outcome")
)

// Tracer starts spans; nil is off.
type Tracer struct {
	tp *sdktrace.TracerProvider
	t  trace.Tracer
}

// Config configures a Tracer.
type Config struct {
	Endpoint string // OTLP/HTTP traces URL, as config.OTLPEndpoint takes it
	Service  string // service.name; default "ostiary"
	Version  string
	// BatchTimeout is how long spans wait to be sent in a batch; default 2s.
	BatchTimeout time.Duration
}

// New starts a Tracer exporting to cfg.Endpoint. Nothing is sent before a
// span ends; an unreachable collector costs dropped spans (the exporter's
// queue is bounded), never a request.
func New(cfg Config) (*Tracer, error) {
	endpoint, err := config.OTLPEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	if cfg.Service == "" {
		cfg.Service = "ostiary"
	}
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = 2 * time.Second
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(endpoint), otlptracehttp.WithTimeout(10 * time.Second)}
	if strings.HasPrefix(endpoint, "https://") {
		opts = append(opts, otlptracehttp.WithTLSClientConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot set up the OTLP exporter: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", cfg.Service), attribute.String("service.version", cfg.Version))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(cfg.BatchTimeout)),
		sdktrace.WithIDGenerator(ids{}), sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithResource(res))
	return &Tracer{tp: tp, t: tp.Tracer("github.com/ostiary/ostiary")}, nil
}

// Shutdown sends what is queued and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// Span is a started span; the zero Span (tracing off) does nothing.
type Span struct{ s trace.Span }

// End ends the span.
func (s Span) End() {
	if s.s != nil {
		s.s.End()
	}
}

// Set adds attributes.
func (s Span) Set(kv ...attribute.KeyValue) {
	if s.s != nil {
		s.s.SetAttributes(kv...)
	}
}

// SetName renames the span (the request's method is known only once its
// body is read).
func (s Span) SetName(name string) {
	if s.s != nil {
		s.s.SetName(name)
	}
}

// Fail marks the span failed with a short, safe description (a reason
// code, never an error's text, which may quote what a client sent).
func (s Span) Fail(reason string) {
	if s.s != nil {
		s.s.SetStatus(codes.Error, reason)
	}
}

// Recording reports whether the span is recorded.
func (s Span) Recording() bool { return s.s != nil && s.s.IsRecording() }

// Traceparent is the W3C traceparent naming this span, to send to an
// upstream so that its spans are this one's children; "" when off.
func (s Span) Traceparent() string {
	if s.s == nil {
		return ""
	}
	sc := s.s.SpanContext()
	if !sc.IsValid() {
		return ""
	}
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// Start starts a stage span, a child of ctx's span.
func (t *Tracer) Start(ctx context.Context, name string, kv ...attribute.KeyValue) (context.Context, Span) {
	if t == nil {
		return ctx, Span{}
	}
	ctx, s := t.t.Start(ctx, name, trace.WithAttributes(kv...))
	return ctx, Span{s}
}

// StartRequest starts the server span of one MCP request whose
// correlation id is id, continuing the client's traceparent when its
// trace id is the request's.
func (t *Tracer) StartRequest(ctx context.Context, name, id, traceparent string) (context.Context, Span) {
	if t == nil {
		return ctx, Span{}
	}
	tid := TraceIDOf(id)
	if sc, ok := parseTraceparent(traceparent); ok && sc.TraceID() == tid {
		ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
	} else {
		ctx = trace.ContextWithSpanContext(ctx, trace.SpanContext{}) // a root, whatever ctx held
		ctx = context.WithValue(ctx, traceIDKey{}, tid)
	}
	ctx, s := t.t.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(AttrCorrelationID.String(id)))
	return ctx, Span{s}
}

// TraceIDOf is the trace id of correlation id: id itself when it is 32
// lowercase hex digits, not all zero; else the first 16 bytes of
// SHA-256("ostiary-correlation-id:" + id).
func TraceIDOf(id string) trace.TraceID {
	var tid trace.TraceID
	if len(id) == 32 && id == strings.ToLower(id) {
		if _, err := hex.Decode(tid[:], []byte(id)); err == nil && tid.IsValid() {
			return tid
		}
	}
	sum := sha256.Sum256([]byte("ostiary-correlation-id:" + id))
	copy(tid[:], sum[:16])
	return tid
}

// parseTraceparent parses a version-00 W3C traceparent.
func parseTraceparent(s string) (trace.SpanContext, bool) {
	if len(s) != 55 || s[:3] != "00-" || s[35] != '-' || s[52] != '-' {
		return trace.SpanContext{}, false
	}
	tid, err1 := trace.TraceIDFromHex(s[3:35])
	sid, err2 := trace.SpanIDFromHex(s[36:52])
	flags, err3 := hex.DecodeString(s[53:])
	if err1 != nil || err2 != nil || err3 != nil || s != strings.ToLower(s) {
		return trace.SpanContext{}, false
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags[0]), Remote: true})
	return sc, sc.IsValid()
}

type traceIDKey struct{}

// ids gives a root span the trace id StartRequest put in its context, and
// random span ids.
type ids struct{}

func (ids) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	tid, ok := ctx.Value(traceIDKey{}).(trace.TraceID)
	if !ok {
		rand.Read(tid[:])
	}
	return tid, newSpanID()
}

func (ids) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return newSpanID() }

func newSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		rand.Read(sid[:])
	}
	return sid
}

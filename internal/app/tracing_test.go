package app_test

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/ostiary/ostiary/internal/app/apptest"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/policy"
	"github.com/ostiary/ostiary/internal/testutil"
	"github.com/ostiary/ostiary/internal/tracing"
)

// otlpReceiver is an OTLP/HTTP traces endpoint on 127.0.0.1 that decodes
// what it is sent (protobuf) and keeps every span.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []*tracepb.Span
	bad   []string
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	r := &otlpReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			body = zr
		}
		b, _ := io.ReadAll(body)
		var msg coltrace.ExportTraceServiceRequest
		r.mu.Lock()
		defer r.mu.Unlock()
		if req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" || proto.Unmarshal(b, &msg) != nil {
			r.bad = append(r.bad, req.URL.Path+" "+req.Header.Get("Content-Type"))
			http.Error(w, "bad export", 400)
			return
		}
		for _, rs := range msg.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				r.spans = append(r.spans, ss.Spans...)
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Write(out)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// trace returns the spans of trace id (hex) once want of them have come.
func (r *otlpReceiver) trace(t *testing.T, id string, want int) []*tracepb.Span {
	t.Helper()
	var out []*tracepb.Span
	testutil.Eventually(t, 15*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		out = nil
		for _, s := range r.spans {
			if hex.EncodeToString(s.TraceId) == id {
				out = append(out, s)
			}
		}
		return len(out) >= want
	}, "trace %s: fewer than %d spans arrived", id, want)
	return out
}

func attr(s *tracepb.Span, key string) string {
	for _, a := range s.Attributes {
		if a.Key == key {
			switch v := a.Value.Value.(type) {
			case *commonpb.AnyValue_StringValue:
				return v.StringValue
			case *commonpb.AnyValue_IntValue:
				return strconv.FormatInt(v.IntValue, 10)
			}
		}
	}
	return ""
}

// A trace of one call: the server span, its trace id the request's
// correlation id and its parent the client's span (the client's
// traceparent continued), and one child span per pipeline stage —
// authenticate, authorize, policy, audit (the decision), upstream call,
// audit (the outcome) — each a direct child of the server span; the
// upstream receives a traceparent naming the upstream call span. No span
// carries the arguments or the key.
func TestTraceOfOneCall(t *testing.T) { // not parallel: it counts every span of a call exactly, and a read retried on a loaded machine adds one
	rcv := newOTLPReceiver(t)
	s := apptest.StartWith(t, func(c *config.Config) { c.OTLPEndpoint = rcv.srv.URL })
	up := apptest.NewUpstream(t, s, "fin", true)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "payer", []string{"invoke:fin.*"}, "bob", false)
	bob, _ := newKey(t, s, map[string]any{"user": "bob"})
	label(t, s, "fin.pay", policy.Labels{DataClasses: []string{"financial"}, Irreversible: true})

	const traceID, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	h := modernHeaders("tools/call", "fin.lookup")
	h["Traceparent"] = "00-" + traceID + "-" + clientSpan + "-01"
	r := rpc(t, s, bob, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.lookup","arguments":{"id":"ARG-SECRET-42"},`+modern+`}}`, h)
	mustStatus(t, r, http.StatusOK)
	if r.Header.Get("X-Request-ID") != traceID {
		t.Fatalf("correlation id %q, want the traceparent's trace id", r.Header.Get("X-Request-ID"))
	}
	spans := rcv.trace(t, traceID, 7)
	var root *tracepb.Span
	for _, sp := range spans {
		if sp.Kind == tracepb.Span_SPAN_KIND_SERVER {
			if root != nil {
				t.Fatalf("two server spans: %s and %s", root.Name, sp.Name)
			}
			root = sp
		}
	}
	if root == nil || root.Name != "mcp tools/call" || hex.EncodeToString(root.ParentSpanId) != clientSpan || attr(root, "ostiary.correlation_id") != traceID {
		t.Fatalf("server span: %v", root)
	}
	children := map[string]int{}
	var upstreamSpan *tracepb.Span
	for _, sp := range spans {
		if sp == root {
			continue
		}
		if string(sp.ParentSpanId) != string(root.SpanId) {
			t.Errorf("span %q: parent %x, want the server span %x", sp.Name, sp.ParentSpanId, root.SpanId)
		}
		if sp.StartTimeUnixNano < root.StartTimeUnixNano || sp.EndTimeUnixNano > root.EndTimeUnixNano {
			t.Errorf("span %q lies outside the server span", sp.Name)
		}
		children[sp.Name]++
		if sp.Name == tracing.SpanUpstream {
			upstreamSpan = sp
		}
	}
	want := map[string]int{tracing.SpanAuthenticate: 1, tracing.SpanAuthorize: 1, tracing.SpanPolicy: 1, tracing.SpanAudit: 2, tracing.SpanUpstream: 1}
	for name, n := range want {
		if children[name] != n {
			t.Errorf("%d %q spans, want %d (all: %v)", children[name], name, n, children)
		}
	}
	if upstreamSpan == nil {
		t.Fatal("no upstream call span")
	}
	if attr(upstreamSpan, "ostiary.upstream") != "fin" {
		t.Errorf("upstream span attributes: %v", upstreamSpan.Attributes)
	}
	calls := up.Calls()
	if len(calls) != 1 || calls[0].Traceparent != "00-"+traceID+"-"+hex.EncodeToString(upstreamSpan.SpanId)+"-01" {
		t.Errorf("the upstream received traceparent %q, want the upstream call span's", calls[0].Traceparent)
	}
	for _, sp := range spans {
		for _, a := range sp.Attributes {
			if v := a.Value.String(); strings.Contains(v, "ARG-SECRET") || strings.Contains(v, bob) || strings.Contains(v, "bob") {
				t.Errorf("span %q attribute %s = %s", sp.Name, a.Key, v)
			}
		}
	}

	// A client's own X-Request-ID, not a trace id: the trace id is derived
	// from it, and the server span names it.
	h = modernHeaders("tools/call", "fin.pay")
	h["X-Request-ID"] = "order-7-retry"
	r = rpc(t, s, bob, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fin.pay","arguments":{"amount":120,"to":"ACME"},`+modern+`}}`, h)
	mustStatus(t, r, http.StatusOK)
	derived := tracing.TraceIDOf("order-7-retry").String()
	spans = rcv.trace(t, derived, 6) // held: authenticate, authorize, policy, approval wait, audit; and the server span
	names := map[string]*tracepb.Span{}
	for _, sp := range spans {
		names[sp.Name] = sp
	}
	root, wait := names["mcp tools/call"], names[tracing.SpanApproval]
	if root == nil || attr(root, "ostiary.correlation_id") != "order-7-retry" || len(root.ParentSpanId) != 0 {
		t.Fatalf("server span of a held call: %v", root)
	}
	if wait == nil || string(wait.ParentSpanId) != string(root.SpanId) || wait.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("approval wait span: %v", wait)
	}
	if names[tracing.SpanUpstream] != nil {
		t.Error("a held call has an upstream call span")
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.bad) > 0 {
		t.Errorf("exports the receiver could not decode: %v", rcv.bad)
	}
}

// TraceIDOf: a 32-digit lowercase hex correlation id is the trace id; any
// other (and the all-zero id) is hashed, deterministically.
func TestTraceIDOf(t *testing.T) {
	t.Parallel()
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	if got := tracing.TraceIDOf(id).String(); got != id {
		t.Errorf("TraceIDOf(%s) = %s", id, got)
	}
	for _, other := range []string{strings.ToUpper(id), "00000000000000000000000000000000", "order-7", id + "0", ""} {
		a, b := tracing.TraceIDOf(other), tracing.TraceIDOf(other)
		if a != b || !a.IsValid() || a.String() == strings.ToLower(other) {
			t.Errorf("TraceIDOf(%q) = %s, %s", other, a, b)
		}
	}
}

// serveTraceUpstream is a stdio upstream (TestMain, argument
// trace-upstream) whose one tool answers with the traceparent its call's
// _meta carried.
func serveTraceUpstream() error {
	srv := mcp.NewServer(&mcp.Implementation{Name: "trace-upstream", Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: "traceparent", Description: "Say which trace context came.", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			tp, _ := req.Params.Meta["traceparent"].(string)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "traceparent=" + tp}}}, nil
		})
	return srv.Run(context.Background(), &mcp.StdioTransport{})
}

// A stdio upstream has no headers: it gets the upstream call span's
// traceparent in the call's _meta.
func TestTraceToStdioUpstream(t *testing.T) {
	t.Parallel()
	rcv := newOTLPReceiver(t)
	s := apptest.StartWith(t, func(c *config.Config) { c.OTLPEndpoint = rcv.srv.URL })
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "tr", "command": []string{os.Args[0], "trace-upstream"}}), http.StatusCreated)
	setup(t, s, "tracer", []string{"invoke:tr.*"}, "tess", false)
	key, _ := newKey(t, s, map[string]any{"user": "tess"})
	r := rpc(t, s, key, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tr.traceparent","arguments":{},`+modern+`}}`,
		modernHeaders("tools/call", "tr.traceparent"))
	mustStatus(t, r, http.StatusOK)
	id := r.Header.Get("X-Request-ID")
	var upstreamSpan *tracepb.Span
	for _, sp := range rcv.trace(t, id, 7) {
		if sp.Name == tracing.SpanUpstream {
			upstreamSpan = sp
		}
	}
	if upstreamSpan == nil {
		t.Fatal("no upstream call span")
	}
	want := "traceparent=00-" + id + "-" + hex.EncodeToString(upstreamSpan.SpanId) + "-01"
	if !strings.Contains(string(r.Body), want) {
		t.Errorf("the stdio upstream answered %s, want %s", r.Body, want)
	}
}

// A collector that hangs, or refuses connections, costs dropped spans,
// never a call: every call is answered as without tracing, and the server
// still stops (the exporter's flush at stop is bounded).
func TestTracingCollectorDown(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	t.Cleanup(hanging.Close)
	t.Cleanup(func() { close(release) })
	refusing := httptest.NewServer(http.NotFoundHandler())
	refusing.Close() // nothing listens there any more
	for name, endpoint := range map[string]string{"hanging": hanging.URL, "refusing": refusing.URL} {
		t.Run(name, func(t *testing.T) {
			s := apptest.StartWith(t, func(c *config.Config) { c.OTLPEndpoint = endpoint })
			up := apptest.NewUpstream(t, s, "fin", true)
			mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
			setup(t, s, "caller", []string{"invoke:fin.*"}, "ann", false)
			key, _ := newKey(t, s, map[string]any{"user": "ann"})
			for range 20 {
				mustStatus(t, toolCall(t, s, key, "fin.lookup", `{"id":"1"}`), http.StatusOK)
			}
			if n := len(up.Calls()); n != 20 {
				t.Errorf("%d calls reached the upstream, want 20", n)
			}
			done := make(chan error, 1)
			go func() { done <- s.App.Close(context.Background()) }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("stop: %v", err)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("the server did not stop with its collector down")
			}
		})
	}
}

// Both eras through the SDK's clients (a 2025-11-25 session, and the
// latest revision): each tools/call is one trace with every stage a child
// of its server span.
func TestTraceBothEras(t *testing.T) { // not parallel: it counts every span of a call, and calls beside it would load the collector
	rcv := newOTLPReceiver(t)
	s := apptest.StartWith(t, func(c *config.Config) { c.OTLPEndpoint = rcv.srv.URL })
	up := apptest.NewUpstream(t, s, "fin", false)
	mustStatus(t, s.Do("POST", "/api/v1/upstreams", s.AdminKey, map[string]any{"name": "fin", "url": up.URL, "allow_private": true}), http.StatusCreated)
	setup(t, s, "caller", []string{"invoke:fin.*"}, "ann", false)
	key, _ := newKey(t, s, map[string]any{"user": "ann"})
	for _, era := range []string{"2025-11-25", ""} {
		cs, err := s.Client(t, key, era)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "fin.lookup", Arguments: map[string]any{"id": "1"}}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]int{tracing.SpanAuthenticate: 1, tracing.SpanAuthorize: 1, tracing.SpanPolicy: 1, tracing.SpanAudit: 2, tracing.SpanUpstream: 1}
	testutil.Eventually(t, 15*time.Second, func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		roots := map[string]bool{} // span ids of tools/call server spans
		for _, sp := range rcv.spans {
			if sp.Name == "mcp tools/call" && sp.Kind == tracepb.Span_SPAN_KIND_SERVER {
				roots[string(sp.SpanId)] = true
			}
		}
		complete := 0
		for root := range roots {
			got := map[string]int{}
			for _, sp := range rcv.spans {
				if string(sp.ParentSpanId) == root {
					got[sp.Name]++
				}
			}
			// Every stage at least as often as one call makes it, and
			// nothing else: a loaded machine may retry a read (one more
			// audit or upstream span), never drop or misplace a stage.
			ok := len(got) == len(want)
			for name, n := range want {
				ok = ok && got[name] >= n && got[name] <= n+2
			}
			if ok {
				complete++
			}
		}
		return complete == 2
	}, "two tools/call traces, each with every stage under its server span, did not arrive")
}

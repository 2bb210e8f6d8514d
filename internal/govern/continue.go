//lint:file-ignore SA1019 sampling and roots are deprecated as of 2026-07-28 (SEP-2577) but still in their deprecation window: an upstream may still ask for them, and the gateway relays the question on purpose.

package govern

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/upstream"
)

// Multi round-trip (2026-07-28, SEP-2322). An upstream that needs the
// client's input before it goes on answers a call with an input_required
// result: questions (elicitation, sampling, roots) keyed by its own ids,
// and an opaque requestState. The gateway relays the result to the client
// as it is, except for the state: the client gets Ostiary's sealed state,
// which binds the upstream's to the user, key, target (tool, prompt or
// resource) and argument digest of the request, and expires. The client's next call, with its answers and that
// state, is governed like any other (authenticated, authorized, checked by
// policy, audited); the state is opened, checked and the upstream's own
// goes back to the upstream with the answers. A call an approval let run
// is continued under the same approval.

const (
	// stateTTL bounds how long a client may take to answer.
	stateTTL = 10 * time.Minute
	// maxUpstreamState bounds the upstream state carried by a client.
	maxUpstreamState = 32 << 10
	statePrefix      = "ost1."
)

// continuation is what a sealed requestState carries.
type continuation struct {
	Upstream string `json:"s,omitempty"` // the upstream's own requestState
	Approval string `json:"ap,omitempty"`
	Parked   string `json:"p,omitempty"` // a call under way that asked the client (bridge.go)
	User     string `json:"u"`
	KeyID    string `json:"k"`
	Target   string `json:"t"` // tool:NAME, prompt:NAME or resource:URI
	Args     string `json:"a"` // argument digest
	Expires  int64  `json:"x"` // Unix seconds
}

// sealer seals and opens continuations with a key of this process: a
// state outlives neither a restart nor the replica that issued it.
//
// A state is spent when it is opened: one state continues one request.
// Each answer gets a new state (the upstream's next input_required result,
// or a question asked again), so a client never needs one twice, while a
// replayed final answer (say, the confirmation of an approved payment)
// cannot run the call twice.
type sealer struct {
	aead  cipher.AEAD
	mu    sync.Mutex
	spent map[string]int64 // nonce → the state's expiry (Unix seconds)
}

// spend marks a state's nonce as used, reporting false if it already was;
// entries are dropped once their states have expired anyway.
func (s *sealer) spend(nonce []byte, expires, now int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spent == nil {
		s.spent = map[string]int64{}
	}
	if len(s.spent) > 0 && len(s.spent)%1024 == 0 {
		for n, x := range s.spent {
			if x < now {
				delete(s.spent, n)
			}
		}
	}
	if _, used := s.spent[string(nonce)]; used {
		return false
	}
	s.spent[string(nonce)] = expires
	return true
}

func newSealer() (*sealer, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(c continuation, p *authn.Principal, target, digest string, now time.Time) (string, error) {
	if len(c.Upstream) > maxUpstreamState {
		return "", fmt.Errorf("it is longer than %d bytes", maxUpstreamState)
	}
	c.User, c.KeyID, c.Target, c.Args, c.Expires = p.User, p.KeyID, target, digest, now.Add(stateTTL).Unix()
	plain, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return statePrefix + base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(statePrefix))), nil
}

// open returns the continuation sealed in state, if it was sealed for this
// caller (same key), target and arguments and has not expired.
func (s *sealer) open(state string, p *authn.Principal, target, digest string, now time.Time) (continuation, error) {
	var c continuation
	raw, ok := strings.CutPrefix(state, statePrefix)
	if !ok || len(raw) > 2*maxUpstreamState {
		return c, errors.New("not issued by this gateway")
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(raw) // one text per state
	if err != nil || len(b) < s.aead.NonceSize() {
		return c, errors.New("not issued by this gateway")
	}
	plain, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], []byte(statePrefix))
	if err != nil || json.Unmarshal(plain, &c) != nil {
		return c, errors.New("not issued by this gateway, or altered")
	}
	switch {
	case c.User != p.User || c.KeyID != p.KeyID:
		return continuation{}, errors.New("issued to another caller")
	case c.Target != target || c.Args != digest:
		return continuation{}, errors.New("issued for another call (the request must be repeated as it was, with the answers)")
	case now.Unix() > c.Expires:
		return continuation{}, errors.New("expired; call again without it")
	case !s.spend(b[:s.aead.NonceSize()], c.Expires, now.Unix()):
		return continuation{}, errors.New("already used; each state continues one request")
	}
	return c, nil
}

// inputKeys lists the upstream's question ids, for the record.
func inputKeys(m mcp.InputRequestMap, redact func([]byte) []byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if redact != nil { // ids are the upstream's: they may quote what it was sent
			k = string(redact([]byte(k)))
		}
		keys = append(keys, clip(k))
	}
	slices.Sort(keys)
	return keys
}

// missingCapabilities names the client capabilities the questions need
// and the client did not declare.
func missingCapabilities(caps json.RawMessage, m mcp.InputRequestMap) []string {
	var missing []string
	for _, ir := range m {
		var method string
		switch ir.(type) {
		case *mcp.ElicitParams:
			method = "elicitation/create"
		case *mcp.CreateMessageParams, *mcp.CreateMessageWithToolsParams:
			method = "sampling/createMessage"
		case *mcp.ListRootsParams:
			method = "roots/list"
		default:
			continue
		}
		if need := upstream.Capability(method); !upstream.Declares(caps, method) && !slices.Contains(missing, need) {
			missing = append(missing, need)
		}
	}
	slices.Sort(missing)
	return missing
}

func missingCapabilitiesError(missing []string) error {
	req := map[string]any{}
	for _, m := range missing {
		req[m] = map[string]any{}
	}
	data, _ := json.Marshal(map[string]any{"requiredCapabilities": req})
	return &jsonrpc.Error{Code: mcp.CodeMissingRequiredClientCapabilities,
		Message: "the tool needs client capabilities the client did not declare: " + strings.Join(missing, ", "), Data: data}
}

// resume opens the requestState a request brings, if any, for p and this
// target and argument digest, noting on rec that it continues and what
// was answered (its SHA-256: provable without holding it). The error is
// what the client sees.
func (pl *Pipeline) resume(rec *audit.Record, p *authn.Principal, target, digest string, client upstream.Continuation) (continuation, error) {
	var cont continuation
	if client.InputResponses != nil {
		sum := sha256.Sum256(client.InputResponses)
		rec.Detail["input_sha256"] = hex.EncodeToString(sum[:])
	}
	if client.RequestState == "" {
		return cont, nil
	}
	cont, err := pl.states.open(client.RequestState, p, target, digest, pl.cfg.Now())
	if err != nil {
		return cont, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "invalid requestState: " + err.Error()}
	}
	rec.Detail["continues"] = true
	return cont, nil
}

// forward is what goes upstream: the client's capabilities and answers
// with the upstream's own state.
func forward(client upstream.Continuation, cont continuation) upstream.Continuation {
	return upstream.Continuation{Capabilities: client.Capabilities, InputResponses: client.InputResponses, RequestState: cont.Upstream}
}

// ask relays an upstream's input_required result: it notes the question
// ids on out, refuses the questions gate does not allow (questions.go) and
// (-32021) those the client declared no capability for, and returns the
// requestState for the client, sealing the upstream's own in it.
func (pl *Pipeline) ask(ctx context.Context, out *audit.Record, p *authn.Principal, target, digest string, client upstream.Continuation,
	reqs mcp.InputRequestMap, upstreamState string, cont continuation, redact func([]byte) []byte, uname string, gate upstream.Gate) (string, error) {
	out.Detail["input_required"] = inputKeys(reqs, redact)
	if err := pl.governQuestions(ctx, out, p, uname, gate, reqs, redact); err != nil {
		return "", err
	}
	if missing := missingCapabilities(client.Capabilities, reqs); len(missing) > 0 {
		out.Outcome, out.Reason = audit.Failed, ReasonCapabilities
		return "", missingCapabilitiesError(missing)
	}
	cont.Upstream = upstreamState
	state, err := pl.states.seal(cont, p, target, digest, pl.cfg.Now())
	if err != nil {
		out.Outcome, out.Reason = audit.Failed, ReasonUpstream
		return "", &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "the upstream's requestState cannot be relayed: " + err.Error()}
	}
	return state, nil
}

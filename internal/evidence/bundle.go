package evidence

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ostiary/ostiary/internal/approval"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/fault"
	"github.com/ostiary/ostiary/internal/jcs"
	"github.com/ostiary/ostiary/internal/strictjson"
)

// An evidence bundle is one file holding every audit record of a case
// (one request id, one approval, or one user's records in a time range),
// each as the exact bytes the audit log holds with its Merkle inclusion
// proof to a signed checkpoint, the tool and policy versions those records
// name, and the key fingerprint; the whole is signed by the same key, so
// that no record can be added or left out without the signature failing.
// Records of other users are not in it: a proof holds only hashes of
// subtrees (internal/audit/DESIGN.md, "Evidence bundles").

// EventExport is the record of an evidence bundle exported.
const EventExport = "evidence-export"

// BundleFormat names the bundle format; a verifier refuses any other.
const BundleFormat = "ostiary-evidence-bundle/1"

// Bundle limits: a case larger than this is refused at export (narrow it).
const (
	MaxBundleRecords = 10000
	MaxBundleBytes   = 32 << 20
)

// Case selects the records of a bundle: exactly one of RequestID,
// Approval, or User with Since and Until (RFC 3339; since ≤ time < until).
type Case struct {
	RequestID string `json:"request_id,omitempty"`
	Approval  string `json:"approval,omitempty"`
	User      string `json:"user,omitempty"`
	Since     string `json:"since,omitempty"`
	Until     string `json:"until,omitempty"`
}

// Validate checks that c selects one case, clearly.
func (c Case) Validate() error {
	n := 0
	for _, s := range []string{c.RequestID, c.Approval, c.User} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return fault.New(fault.Invalid, "give exactly one of request_id, approval, or user with since and until")
	}
	for _, s := range []string{c.RequestID, c.Approval, c.User} {
		if len(s) > 256 || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fault.New(fault.Invalid, "the case names an identifier longer than 256 bytes or with control characters")
		}
	}
	if c.User == "" {
		if c.Since != "" || c.Until != "" {
			return fault.New(fault.Invalid, "since and until go with user")
		}
		return nil
	}
	s, u, err := c.window()
	if err != nil {
		return err
	}
	if !s.Before(u) {
		return fault.New(fault.Invalid, "since must be before until")
	}
	return nil
}

func (c Case) window() (since, until time.Time, err error) {
	since, err1 := time.Parse(time.RFC3339Nano, c.Since)
	until, err2 := time.Parse(time.RFC3339Nano, c.Until)
	if err1 != nil || err2 != nil {
		return since, until, fault.New(fault.Invalid, "user needs since and until, RFC 3339 times such as 2026-11-22T10:00:00Z")
	}
	return since, until, nil
}

// BundleRecord is one record of a bundle.
type BundleRecord struct {
	Seq    uint64   `json:"seq"`
	Record string   `json:"record"` // the record's canonical encoding, as the log holds it
	Proof  []string `json:"proof"`  // hex hashes of the inclusion proof, leaf first
}

// ToolVersion is one tool version a case's records name.
type ToolVersion struct {
	Tool     string `json:"tool"`
	Version  string `json:"version"`
	Digest   string `json:"digest,omitempty"`
	Upstream string `json:"upstream,omitempty"`
}

// Versions are the tool and policy versions in force for the case's
// records, as those records name them.
type Versions struct {
	Tools    []ToolVersion `json:"tools"`
	Policies []string      `json:"policies"`
}

// Bundle is an evidence bundle. Its file is the RFC 8785 encoding of it
// and a newline; Sig covers the encoding without Sig.
type Bundle struct {
	Format     string          `json:"format"`
	Case       Case            `json:"case"`
	ExportedAt string          `json:"exported_at"`
	ExportedBy string          `json:"exported_by"`
	Ostiary    string          `json:"ostiary_version"`
	KeyID      string          `json:"key_id"`
	Checkpoint json.RawMessage `json:"checkpoint"` // an audit.Checkpoint, as in its file
	Versions   Versions        `json:"versions"`
	Records    []BundleRecord  `json:"records"`
	Sig        string          `json:"sig,omitempty"`
}

// CaseRecords returns the seqs of the records of c, ascending, reading
// the index through a (at most MaxBundleRecords).
func CaseRecords(ctx context.Context, a Auditor, c Case) ([]uint64, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var recs []audit.Record
	var err error
	switch {
	case c.RequestID != "":
		recs, err = queryAll(ctx, a, audit.Query{RequestID: c.RequestID})
	case c.User != "":
		since, until, _ := c.window()
		recs, err = queryAll(ctx, a, audit.Query{Actor: c.User, Since: since, Until: until})
	default:
		recs, err = queryAll(ctx, a, audit.Query{Target: "approval:" + c.Approval})
		if err == nil {
			requester, ids := approvalRequests(recs)
			for _, id := range ids {
				more, err := queryAll(ctx, a, audit.Query{RequestID: id, Actor: requester})
				if err != nil {
					return nil, err
				}
				recs = append(recs, more...)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	seqs := make([]uint64, 0, len(recs))
	for _, r := range recs {
		seqs = append(seqs, r.Seq)
	}
	slices.Sort(seqs)
	seqs = slices.Compact(seqs)
	if len(seqs) > MaxBundleRecords {
		return nil, fault.New(fault.Invalid, "the case has more than %d records: narrow it (a shorter time range)", MaxBundleRecords)
	}
	return seqs, nil
}

// approvalRequests names, from an approval's records, who asked for it
// and the requests involved: the call that was held and the one that used it.
func approvalRequests(recs []audit.Record) (requester string, ids []string) {
	for _, r := range recs {
		if r.Event == approval.EventRequested || r.Event == approval.EventUsed {
			requester = r.Actor
			if r.RequestID != "" && !slices.Contains(ids, r.RequestID) {
				ids = append(ids, r.RequestID)
			}
		}
	}
	slices.Sort(ids)
	return requester, ids
}

// queryAll pages through the index, newest first, up to one page more
// than a bundle may hold.
func queryAll(ctx context.Context, a Auditor, q audit.Query) ([]audit.Record, error) {
	q.Limit = audit.MaxLimit
	var out []audit.Record
	for len(out) <= MaxBundleRecords {
		page, err := a.QueryAudit(ctx, q)
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < q.Limit {
			break
		}
		q.BeforeSeq = page[len(page)-1].Seq
	}
	return out, nil
}

// inCase reports whether r belongs to c; for an approval, given the
// approval's requester and requests (approvalRequests).
func inCase(c Case, r *audit.Record, requester string, ids []string) bool {
	switch {
	case c.RequestID != "":
		return r.RequestID == c.RequestID
	case c.User != "":
		since, until, err := c.window()
		return err == nil && r.Actor == c.User && !r.Time.Before(since.Truncate(time.Microsecond)) && r.Time.Before(until)
	default:
		return r.Target == "approval:"+c.Approval || (r.Actor == requester && slices.Contains(ids, r.RequestID))
	}
}

// versionsOf gathers the tool and policy versions the records name.
func versionsOf(recs []*audit.Record) Versions {
	v := Versions{Tools: []ToolVersion{}, Policies: []string{}}
	for _, r := range recs {
		if tool, ok := strings.CutPrefix(r.Target, "tool:"); ok && r.Detail["version"] != nil {
			tv := ToolVersion{Tool: tool, Version: scalar(r.Detail["version"]), Digest: scalar(r.Detail["digest"]), Upstream: scalar(r.Detail["upstream"])}
			if !slices.Contains(v.Tools, tv) {
				v.Tools = append(v.Tools, tv)
			}
		}
		if tool, ok := r.Detail["tool"].(string); ok && r.Detail["tool_version"] != nil {
			tv := ToolVersion{Tool: tool, Version: scalar(r.Detail["tool_version"]), Digest: scalar(r.Detail["tool_digest"])}
			if !slices.Contains(v.Tools, tv) {
				v.Tools = append(v.Tools, tv)
			}
		}
		if p := scalar(r.Detail["policy_version"]); p != "" && !slices.Contains(v.Policies, p) {
			v.Policies = append(v.Policies, p)
		}
	}
	slices.SortFunc(v.Tools, func(a, b ToolVersion) int {
		return strings.Compare(a.Tool+"\x00"+a.Version+"\x00"+a.Digest+"\x00"+a.Upstream, b.Tool+"\x00"+b.Version+"\x00"+b.Digest+"\x00"+b.Upstream)
	})
	slices.Sort(v.Policies)
	return v
}

// scalar renders a detail value (a string or a number) as text.
func scalar(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

// canonical is the RFC 8785 encoding of b (as JSON).
func canonical(b *Bundle) ([]byte, error) {
	raw, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	v, err := strictjson.Parse(raw)
	if err != nil {
		return nil, err
	}
	return jcs.Append(nil, v)
}

// Export is what BuildBundle needs of the audit log.
type Export struct {
	Case       Case
	Checkpoint audit.Checkpoint
	Records    []audit.Proven
	ExportedAt time.Time
	ExportedBy string
	Version    string                // Ostiary's
	Sign       func(b []byte) []byte // the writer's SignBundle
	Public     ed25519.PublicKey     // the key Sign signs with
}

// BuildBundle assembles and signs the bundle of e, returning its file.
func BuildBundle(e Export) ([]byte, error) {
	cpJSON, err := json.Marshal(e.Checkpoint)
	if err != nil {
		return nil, err
	}
	b := Bundle{Format: BundleFormat, Case: e.Case, ExportedAt: audit.FormatTime(e.ExportedAt), ExportedBy: e.ExportedBy,
		Ostiary: e.Version, KeyID: audit.KeyFingerprint(e.Public), Checkpoint: cpJSON, Records: []BundleRecord{}}
	recs := make([]*audit.Record, 0, len(e.Records))
	for _, p := range e.Records {
		r, err := audit.ParsePayload(p.Payload)
		if err != nil {
			return nil, fmt.Errorf("evidence: record %d: %w", p.Seq, err)
		}
		recs = append(recs, r)
		br := BundleRecord{Seq: p.Seq, Record: string(p.Payload), Proof: make([]string, len(p.Proof))}
		for i, h := range p.Proof {
			br.Proof[i] = hex.EncodeToString(h)
		}
		b.Records = append(b.Records, br)
	}
	b.Versions = versionsOf(recs)
	unsigned, err := canonical(&b)
	if err != nil {
		return nil, err
	}
	b.Sig = base64.StdEncoding.EncodeToString(e.Sign(unsigned))
	out, err := canonical(&b)
	if err != nil {
		return nil, err
	}
	if len(out) > MaxBundleBytes {
		return nil, fault.New(fault.Invalid, "the bundle would exceed %d MiB: narrow the case", MaxBundleBytes>>20)
	}
	return append(out, '\n'), nil
}

// BundleSummary describes a bundle that verified.
type BundleSummary struct {
	Case       Case
	Records    int
	Checkpoint uint64
	KeyID      string
	ExportedAt string
	ExportedBy string
}

func (s BundleSummary) String() string {
	return fmt.Sprintf("evidence bundle OK: %d records of %s, each proven in the chain attested by the checkpoint at seq %d (key %s); exported %s by %s",
		s.Records, s.Case.describe(), s.Checkpoint, s.KeyID, s.ExportedAt, s.ExportedBy)
}

func (c Case) describe() string {
	switch {
	case c.RequestID != "":
		return "request " + c.RequestID
	case c.Approval != "":
		return "approval " + c.Approval
	}
	return fmt.Sprintf("user %s from %s until %s", c.User, c.Since, c.Until)
}

// BundleError is a bundle that does not verify: altered, forged, or signed
// by another key.
type BundleError struct{ Problem string }

func (e *BundleError) Error() string { return "evidence bundle does not verify: " + e.Problem }

func broken(format string, args ...any) error {
	return &BundleError{Problem: fmt.Sprintf(format, args...)}
}

// VerifyBundle checks a bundle's file offline against the trusted public
// key: its form (the canonical encoding, nothing else), its signature, the
// checkpoint's signature, each record's canonical form and its inclusion
// proof to the checkpoint's Merkle root, that each record belongs to the
// case, and that the versions are those the records name.
func VerifyBundle(file []byte, pub ed25519.PublicKey) (BundleSummary, error) {
	if len(file) > MaxBundleBytes+1 {
		return BundleSummary{}, broken("larger than %d MiB", MaxBundleBytes>>20)
	}
	body, ok := bytes.CutSuffix(file, []byte("\n"))
	if !ok {
		return BundleSummary{}, broken("it does not end in a newline (cut short?)")
	}
	tree, err := strictjson.Parse(body)
	if err != nil {
		return BundleSummary{}, broken("not JSON: %v", err)
	}
	if canon, err := jcs.Append(nil, tree); err != nil || !bytes.Equal(canon, body) {
		return BundleSummary{}, broken("not in its canonical form: it was altered")
	}
	var b Bundle
	if err := strictjson.Decode(body, &b); err != nil {
		return BundleSummary{}, broken("malformed: %v", err)
	}
	if b.Format != BundleFormat {
		return BundleSummary{}, broken("format %q is not %q", b.Format, BundleFormat)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(b.Sig)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return BundleSummary{}, broken("malformed signature")
	}
	m := tree.(map[string]any)
	delete(m, "sig")
	unsigned, err := jcs.Append(nil, m)
	if err != nil {
		return BundleSummary{}, broken("cannot be encoded: %v", err)
	}
	if b.KeyID != audit.KeyFingerprint(pub) {
		return BundleSummary{}, broken("it names key %s, not the trusted key %s", b.KeyID, audit.KeyFingerprint(pub))
	}
	if !ed25519.Verify(pub, append([]byte(audit.BundleDomain), unsigned...), sig) {
		return BundleSummary{}, broken("its signature is not valid for the trusted key: it was altered, or records were added or removed")
	}
	cp, err := verifyContent(&b, pub)
	if err != nil {
		return BundleSummary{}, err
	}
	return BundleSummary{Case: b.Case, Records: len(b.Records), Checkpoint: cp.Seq, KeyID: b.KeyID,
		ExportedAt: b.ExportedAt, ExportedBy: b.ExportedBy}, nil
}

// verifyContent checks what the bundle's signature alone does not prove:
// that its records are in the chain the checkpoint attests (which may
// itself be anchored off the machine), and belong to its case.
func verifyContent(b *Bundle, pub ed25519.PublicKey) (audit.Checkpoint, error) {
	var cp audit.Checkpoint
	if err := b.Case.Validate(); err != nil {
		return cp, broken("case: %v", err)
	}
	if err := cp.UnmarshalJSON(b.Checkpoint); err != nil {
		return cp, broken("%v", err)
	}
	if err := cp.Verify(pub); err != nil {
		return cp, broken("checkpoint: %v", err)
	}
	if cp.Root == nil {
		return cp, broken("the checkpoint commits to no Merkle root")
	}
	recs := make([]*audit.Record, 0, len(b.Records))
	for i, br := range b.Records {
		if i > 0 && br.Seq <= b.Records[i-1].Seq {
			return cp, broken("record %d is out of order or repeated", br.Seq)
		}
		r, err := audit.ParsePayload([]byte(br.Record))
		if err != nil {
			return cp, broken("record %d: %v", br.Seq, err)
		}
		if r.Seq != br.Seq {
			return cp, broken("record %d holds record %d", br.Seq, r.Seq)
		}
		pf := make([][]byte, len(br.Proof))
		for k, h := range br.Proof {
			x, err := hex.DecodeString(h)
			if err != nil || len(x) != 32 || hex.EncodeToString(x) != h {
				return cp, broken("record %d: malformed proof", br.Seq)
			}
			pf[k] = x
		}
		if err := audit.VerifyInclusion([]byte(br.Record), br.Seq, cp.Seq, pf, cp.Root); err != nil {
			return cp, broken("record %d is not in the chain the checkpoint at seq %d attests: %v", br.Seq, cp.Seq, err)
		}
		recs = append(recs, r)
	}
	var requester string
	var ids []string
	if b.Case.Approval != "" {
		var own []audit.Record
		for _, r := range recs {
			if r.Target == "approval:"+b.Case.Approval {
				own = append(own, *r)
			}
		}
		requester, ids = approvalRequests(own)
	}
	for _, r := range recs {
		if !inCase(b.Case, r, requester, ids) {
			return cp, broken("record %d does not belong to the case (%s)", r.Seq, b.Case.describe())
		}
	}
	want, err := json.Marshal(versionsOf(recs))
	if err != nil {
		return cp, err
	}
	got, err := json.Marshal(b.Versions)
	if err != nil {
		return cp, err
	}
	if !bytes.Equal(want, got) {
		return cp, broken("the versions it lists are not those its records name")
	}
	return cp, nil
}

// IsBundleError reports whether err says a bundle does not verify.
func IsBundleError(err error) bool {
	var be *BundleError
	return errors.As(err, &be)
}

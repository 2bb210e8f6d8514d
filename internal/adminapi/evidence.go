package adminapi

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"net/http"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/authz"
	"github.com/ostiary/ostiary/internal/evidence"
	"github.com/ostiary/ostiary/internal/fault"
)

// Prover proves audit records to a fresh signed checkpoint and signs
// bundles; *audit.Writer is one.
type Prover interface {
	Prove(ctx context.Context, seqs []uint64) (audit.Checkpoint, []audit.Proven, error)
	SignBundle(b []byte) []byte
	PublicKey() ed25519.PublicKey
}

// exportBundle serves GET /evidence/bundle: one case's evidence bundle
// (read-audit). The export is recorded, with the bundle's SHA-256, before
// the bundle is sent: who took which evidence is evidence too.
func (a *API) exportBundle(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	rec := p.Record(evidence.EventExport, "")
	v := r.URL.Query()
	for k, vs := range v {
		switch k {
		case "request_id", "approval", "user", "since", "until":
			if len(vs) != 1 {
				return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, fault.New(fault.Invalid, "%s given more than once", k))
			}
		default:
			return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, fault.New(fault.Invalid, "unknown query parameter %q (a bundle takes request_id, approval, or user with since and until)", clip(k, 40)))
		}
	}
	c := evidence.Case{RequestID: v.Get("request_id"), Approval: v.Get("approval"), User: v.Get("user"), Since: v.Get("since"), Until: v.Get("until")}
	if err := c.Validate(); err != nil {
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, err)
	}
	rec.Detail = map[string]any{}
	for k, s := range map[string]string{"request_id": c.RequestID, "approval": c.Approval, "user": c.User, "since": c.Since, "until": c.Until} {
		if s != "" {
			rec.Detail[k] = s
		}
	}
	if !p.Allows(authz.ReadAudit, authz.All) {
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, fault.New(fault.Forbidden, "permission denied: this needs the read-audit grant"))
	}
	if a.Evidence == nil {
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, fault.New(fault.Unavailable, "evidence export is not available"))
	}
	// Each export reads the whole log up to a fresh checkpoint and may hold
	// 32 MiB: one at a time, so that a flood of exports cannot take the
	// server's CPU and memory from the calls it governs.
	if !a.exporting.CompareAndSwap(false, true) {
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, fault.New(fault.Unavailable, "another evidence export is under way; try again when it is done"))
	}
	defer a.exporting.Store(false)
	// "Every record of the case": an index behind the log would leave the
	// case's newest out, under a signature that vouches for the rest.
	if lag := a.settle(r.Context()); lag > 0 {
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, fault.New(fault.Unavailable,
			"the audit index is %d records behind the log: a bundle now could miss the case's newest records; try again shortly", lag))
	}
	seqs, err := evidence.CaseRecords(r.Context(), a.Audit, c)
	if err != nil {
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, err)
	}
	if len(seqs) == 0 {
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, fault.New(fault.NotFound, "no audit records for this case"))
	}
	cp, proven, err := a.Evidence.Prove(r.Context(), seqs)
	if err != nil {
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, err)
	}
	file, err := evidence.BuildBundle(evidence.Export{Case: c, Checkpoint: cp, Records: proven, ExportedAt: a.Now(), ExportedBy: p.User,
		Version: a.Version, Sign: a.Evidence.SignBundle, Public: a.Evidence.PublicKey()})
	if err != nil {
		return 0, nil, audit.Refuse(r.Context(), a.Auditor, rec, err)
	}
	sum := sha256.Sum256(file)
	rec.Detail["records"], rec.Detail["checkpoint_seq"], rec.Detail["bundle_sha256"] = len(seqs), cp.Seq, hex.EncodeToString(sum[:])
	if _, err := a.Auditor.Write(r.Context(), audit.Entry{Record: rec}); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rawJSON(file), nil
}

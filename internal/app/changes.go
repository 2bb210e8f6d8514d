package app

import (
	"fmt"
	"slices"

	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/change"
	"github.com/ostiary/ostiary/internal/identity"
	"github.com/ostiary/ostiary/internal/policy"
)

// changes builds the reviewed-change service from --require-review
// (environments: the governed objects are shared by every environment
// today, so naming one reviews every kind), --require-review-kinds and
// --review-quorum.
func (a *App) changes(policies *policy.Service, ids *identity.Service) (*change.Service, error) {
	kinds, err := change.ParseKinds(a.cfg.RequireReviewKinds)
	if err != nil {
		return nil, fmt.Errorf("--require-review-kinds: %w", err)
	}
	for _, env := range a.cfg.RequireReview {
		for _, e := range splitComma(env) {
			if !authn.ValidEnvironment(e) {
				return nil, fmt.Errorf("--require-review: %q is not an environment name (1–32 lower-case letters, digits and '-')", e)
			}
			// The objects environments share; users' roles are the directory's,
			// reviewed only by --require-review-kinds user-roles (or all).
			kinds = append(kinds, change.KindPolicy, change.KindToolVersion, change.KindToolLabels)
		}
	}
	if kinds, err = change.ParseKinds(kindStrings(kinds)); err != nil {
		return nil, err
	}
	a.catalog.HoldNewTools(slices.Contains(kinds, change.KindToolVersion))
	return change.New(change.Config{Store: a.store, Auditor: a.writer, Audit: a.store, Policy: policies, Catalog: a.catalog,
		Identity: a.store, Identities: ids, Index: a.writer, Now: a.now, Require: kinds, Quorum: a.cfg.ReviewQuorum, ReplayMax: a.cfg.ReplayMax})
}

func kindStrings(ks []change.Kind) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

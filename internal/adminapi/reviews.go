package adminapi

import (
	"net/http"

	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/review"
)

// ReviewList is GET /reviews.
type ReviewList struct {
	Reviews []review.Campaign `json:"reviews"`
}

func (a *API) startReview(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	var in review.StartRequest
	if err := a.decode(w, r, p.Record(review.EventStart, "review:?"), &in); err != nil {
		return 0, nil, err
	}
	c, err := a.Reviews.Start(r.Context(), p, in)
	return http.StatusCreated, c, err
}

func (a *API) listReviews(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	cs, err := a.Reviews.List(r.Context(), p)
	if cs == nil {
		cs = []review.Campaign{}
	}
	return http.StatusOK, ReviewList{Reviews: cs}, err
}

func (a *API) showReview(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	c, err := a.Reviews.Show(r.Context(), p, r.PathValue("id"))
	return http.StatusOK, c, err
}

func (a *API) attestReview(w http.ResponseWriter, r *http.Request, p *authn.Principal) (int, any, error) {
	target := "review-item:?"
	if review.ValidID(r.PathValue("id")) {
		target = "review-item:" + r.PathValue("id")
	}
	var in review.AttestRequest
	if err := a.decode(w, r, p.Record(review.EventAttest, target), &in); err != nil {
		return 0, nil, err
	}
	it, err := a.Reviews.Attest(r.Context(), p, r.PathValue("id"), in)
	return http.StatusOK, it, err
}

package gateway

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"golang.org/x/time/rate"

	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/authn"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/config"
	"github.com/ostiary/ostiary/internal/edge"
	"github.com/ostiary/ostiary/internal/lru"
)

// Limits are the request rate limits of the front door.
type Limits struct {
	PerKey, PerUser, PerTool config.Rate
}

// limiter keeps one token bucket per key of one dimension, the most
// recently used limiterSize of them: a client making up keys evicts only
// buckets idle longer than everyone else's.
type limiter struct {
	rate    config.Rate
	mu      sync.Mutex
	buckets *lru.Map[string, *rate.Limiter]
}

const limiterSize = 100000

// reserve takes a token for key, or says how long to wait for one.
func (l *limiter) reserve(key string, now time.Time) (bool, time.Duration) {
	if l == nil || l.rate.Per == 0 {
		return true, 0
	}
	l.mu.Lock()
	b := l.buckets.GetOrAdd(key, func() *rate.Limiter { return rate.NewLimiter(rate.Limit(l.rate.Per), l.rate.Burst) })
	l.mu.Unlock()
	if b.AllowN(now, 1) {
		return true, 0
	}
	r := b.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return false, wait
}

func newLimiter(r config.Rate) *limiter {
	return &limiter{rate: r, buckets: lru.New[string, *rate.Limiter](limiterSize)}
}

// overLimit checks the key, user and (for tools/call) tool limits and, when
// one is exceeded, answers 429 with Retry-After and records it.
func (g *Gateway) overLimit(w http.ResponseWriter, r *http.Request, p *authn.Principal, tool string) bool {
	now := g.cfg.Now()
	checks := []struct {
		l         *limiter
		key, name string
	}{{g.perKey, p.KeyID, "key"}, {g.perUser, p.User, "user"}}
	// Tools have buckets only if they exist: a name the client made up is
	// refused later as unknown, and never becomes a key here.
	if _, known := g.cfg.Catalog.Snapshot().Lookup(tool); known || catalog.BuiltinNames[tool] {
		checks = append(checks, struct {
			l         *limiter
			key, name string
		}{g.perTool, tool, "tool"})
	}
	for _, c := range checks {
		ok, wait := c.l.reserve(c.key, now)
		if ok {
			continue
		}
		secs := int(math.Ceil(wait.Seconds()))
		g.cfg.Metrics.RateLimited(c.name)
		rec := p.Record(edge.EventRateLimited, "")
		if tool != "" {
			rec.Target = "tool:" + tool
		}
		rec.Outcome, rec.Reason, rec.Detail = audit.Denied, "rate-limit-"+c.name, map[string]any{"retry_after_s": secs}
		if _, err := g.cfg.Auditor.Write(context.WithoutCancel(r.Context()), audit.Entry{Record: rec}); err != nil {
			g.cfg.Logger.Error("cannot record a rate limit", "request_id", p.RequestID, "err", err)
		}
		w.Header().Set("Retry-After", strconv.Itoa(max(1, secs)))
		writeRPCError(w, http.StatusTooManyRequests, nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest,
			Message: fmt.Sprintf("rate limit of this %s exceeded; retry in %d s", c.name, max(1, secs))})
		return true
	}
	return false
}

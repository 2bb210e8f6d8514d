package gateway

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// streams are the open GET streams of legacy sessions, by API key. A
// request is authenticated when it starts, but a stream may stay open for
// hours: so on every identity change (IdentityChanged) each key with an
// open stream is checked again, and the streams of a key that can no
// longer authenticate (revoked, expired, its user disabled) are ended.
type streams struct {
	mu sync.Mutex
	m  map[string]map[*context.CancelFunc]struct{}
}

// serve runs h for a GET stream of keyID, ended early if the key stops
// authenticating.
func (s *streams) serve(keyID string, h http.Handler, w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string]map[*context.CancelFunc]struct{}{}
	}
	if s.m[keyID] == nil {
		s.m[keyID] = map[*context.CancelFunc]struct{}{}
	}
	s.m[keyID][&cancel] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.m[keyID], &cancel)
		if len(s.m[keyID]) == 0 {
			delete(s.m, keyID)
		}
		s.mu.Unlock()
	}()
	h.ServeHTTP(w, r.WithContext(ctx))
}

// count is how many streams are open.
func (s *streams) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.m {
		n += len(m)
	}
	return n
}

func (s *streams) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.m))
	for k := range s.m {
		out = append(out, k)
	}
	return out
}

// end ends keyID's streams and returns how many there were.
func (s *streams) end(keyID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for cancel := range s.m[keyID] {
		(*cancel)()
	}
	return len(s.m[keyID])
}

// KeyChecker tells whether an API key, by id, can still authenticate.
type KeyChecker interface {
	KeyValid(ctx context.Context, keyID string) (bool, error)
}

// IdentityChanged is called after any change to users, roles or keys: the
// keys holding open streams are checked again, in the background. They
// are also checked every minute, for keys that expire.
func (g *Gateway) IdentityChanged() { go g.recheckStreams() }

// streamRecheck is how often keys holding streams are checked anyway.
const streamRecheck = time.Minute

func (g *Gateway) recheckStreams() {
	kc, ok := g.cfg.Authn.(KeyChecker)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(g.life, 30*time.Second)
	defer cancel()
	for _, id := range g.streams.keys() {
		valid, err := kc.KeyValid(ctx, id)
		if err != nil {
			g.cfg.Logger.Warn("cannot check a key with open streams", "key_id", id, "err", err)
			continue
		}
		if !valid {
			g.cfg.Logger.Info("streams of a key that no longer authenticates ended", "key_id", id, "streams", g.streams.end(id))
		}
	}
}

// watchStreams checks the keys holding streams every streamRecheck.
func (g *Gateway) watchStreams() {
	t := time.NewTicker(streamRecheck)
	defer t.Stop()
	for {
		select {
		case <-g.life.Done():
			return
		case <-t.C:
			g.recheckStreams()
		}
	}
}

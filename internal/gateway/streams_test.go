package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ostiary/ostiary/internal/authn"
)

// keys is a KeyChecker over a set of valid key ids.
type keys struct {
	mu    sync.Mutex
	valid map[string]bool
}

func (k *keys) Authenticate(context.Context, string) (*authn.Principal, error) { return nil, nil }
func (k *keys) KeyValid(_ context.Context, id string) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.valid[id], nil
}

// A recheck (after an identity change, or the minute's) ends exactly the
// streams of keys that no longer authenticate.
func TestRecheckEndsStreams(t *testing.T) {
	k := &keys{valid: map[string]bool{"k1": true, "k2": true}}
	g := &Gateway{cfg: Config{Authn: k, Logger: slog.New(slog.DiscardHandler)}, life: context.Background()}
	open := func(id string) <-chan struct{} {
		ended, started := make(chan struct{}), make(chan struct{})
		go func() {
			g.streams.serve(id, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(started)
				<-r.Context().Done()
			}), httptest.NewRecorder(), httptest.NewRequest("GET", "/mcp", nil))
			close(ended)
		}()
		<-started
		return ended
	}
	one, two := open("k1"), open("k2")
	k.mu.Lock()
	k.valid["k1"] = false // revoked, expired or disabled
	k.mu.Unlock()
	g.recheckStreams()
	select {
	case <-one:
	case <-time.After(5 * time.Second):
		t.Fatal("the invalid key's stream is still open")
	}
	select {
	case <-two:
		t.Error("a valid key's stream was ended")
	case <-time.After(100 * time.Millisecond):
	}
	if ks := g.streams.keys(); len(ks) != 1 || ks[0] != "k2" {
		t.Errorf("streams left: %v", ks)
	}
}

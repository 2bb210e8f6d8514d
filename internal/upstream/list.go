package upstream

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// What an upstream offers, listed for the catalog in a short-lived session
// as System, bounded and redacted.

// maxListed bounds what one upstream may list.
const maxListed = 10000

// List lists every tool and prompt of u in a short-lived session as System.
func (p *Pool) List(ctx context.Context, u spec.Upstream) (l spec.Listing, err error) {
	ctx, cancel := detach(ctx)
	defer cancel()
	if u.Kind == spec.HTTPAPI {
		return p.listAPI(ctx, u)
	}
	// Collect what is injected, so that an error echoing it is redacted.
	injected := &Relay{}
	ctx = withRelay(ctx, injected)
	defer func() {
		if err != nil {
			if red := string(injected.Redact([]byte(err.Error()))); red != err.Error() {
				err = errors.New(red)
			}
		}
	}()
	cs, err := p.connect(ctx, System, u, nil)
	if err != nil {
		return l, err
	}
	defer cs.Close()
	ctx = WithCaller(ctx, System)
	for t, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return l, err
		}
		if l.Tools = append(l.Tools, t); len(l.Tools) > maxListed {
			return l, fmt.Errorf("upstream lists more than %d tools", maxListed)
		}
	}
	caps := &mcp.ServerCapabilities{}
	if init := cs.InitializeResult(); init != nil && init.Capabilities != nil {
		caps = init.Capabilities
	}
	if caps.Prompts != nil {
		if l.Prompts, err = collect(cs.Prompts(ctx, nil), "prompts"); err != nil {
			return l, err
		}
	}
	if caps.Resources != nil {
		if l.Resources, err = collect(cs.Resources(ctx, nil), "resources"); err != nil {
			return l, err
		}
		if l.Templates, err = collect(cs.ResourceTemplates(ctx, nil), "resource templates"); err != nil {
			return l, err
		}
	}
	// Definitions are shown to clients and pinned in the catalog: one that
	// quotes what was injected into the listing's requests is redacted.
	if err := redactAll(injected, l.Tools); err != nil {
		return l, err
	}
	if err := redactAll(injected, l.Prompts); err != nil {
		return l, err
	}
	if err := redactAll(injected, l.Resources); err != nil {
		return l, err
	}
	if err := redactAll(injected, l.Templates); err != nil {
		return l, err
	}
	return l, p.recordEcho(ctx, System, u, "upstream:"+u.Name, injected)
}

// redactAll redacts each element of list in place (elements without
// anything to redact are left as they are).
func redactAll[T any](r *Relay, list []*T) error {
	for i, v := range list {
		red, err := RedactValue(r, v)
		if err != nil {
			return err
		}
		list[i] = red
	}
	return nil
}

// collect gathers a listing, bounded.
func collect[T any](seq iter.Seq2[T, error], what string) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return nil, err
		}
		if out = append(out, v); len(out) > maxListed {
			return nil, fmt.Errorf("upstream lists more than %d %s", maxListed, what)
		}
	}
	return out, nil
}

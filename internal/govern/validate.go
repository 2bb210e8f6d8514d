package govern

import (
	"context"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/ostiary/ostiary/internal/audit"
	"github.com/ostiary/ostiary/internal/catalog"
	"github.com/ostiary/ostiary/internal/upstream/spec"
)

// definitionChanged refuses (and records) a call of a tool whose upstream
// presents a definition other than the pinned one, not yet reviewed; on an
// upstream that keeps such tools pinned, it notes on rec that the call runs
// under the pinned definition.
func (pl *Pipeline) definitionChanged(ctx context.Context, rec audit.Record, e *catalog.Entry) error {
	switch {
	case !e.Changed:
		return nil
	case e.KeepPinned:
		rec.Detail["definition_changed"] = spec.OnChangeKeepPinned
		return nil
	}
	return pl.Deny(ctx, rec, ReasonDefinitionChanged, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams,
		Message: fmt.Sprintf("tool %q is refused (%s): its upstream now presents a definition other than the pinned one, and calls wait until an administrator reviews it",
			e.Name, ReasonDefinitionChanged)})
}

// validate is the stage that checks what a tools/call carries against the
// pinned tool: a reviewed definition, a valid pinned schema, and arguments
// that parsed strictly (ParseArgs) and match it.
func (pl *Pipeline) validate(ctx context.Context, c *toolCall) error {
	e := c.t.tool
	c.rec.Detail["upstream"], c.rec.Detail["version"], c.rec.Detail["digest"] = e.Upstream, e.Version, e.Digest
	if err := pl.definitionChanged(ctx, c.rec, e); err != nil {
		return err
	}
	if e.SchemaErr != nil {
		return pl.Deny(ctx, c.rec, ReasonBadSchema, &jsonrpc.Error{Code: jsonrpc.CodeInternalError,
			Message: fmt.Sprintf("tool %q has an invalid pinned input schema and cannot be called", e.Name)})
	}
	argErr := c.req.ArgErr
	if argErr == nil {
		argErr = e.Schema.Validate(c.req.Args.value)
	}
	if argErr != nil {
		return pl.Deny(ctx, c.rec, ReasonBadArguments, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams,
			Message: fmt.Sprintf("invalid arguments for tool %q: %s", e.Name, clip(argErr.Error()))})
	}
	return nil
}

package spec

// ParamHeader is a tool argument, by property path, that a 2026-07-28
// client mirrors in an HTTP header (x-mcp-header, SEP-2243).
type ParamHeader struct {
	Path   []string
	Header string // Mcp-Param-<name>
}

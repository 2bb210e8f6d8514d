package spec

import "github.com/modelcontextprotocol/go-sdk/mcp"

// Listing is what an upstream offers.
type Listing struct {
	Tools     []*mcp.Tool
	Prompts   []*mcp.Prompt
	Resources []*mcp.Resource
	Templates []*mcp.ResourceTemplate
}

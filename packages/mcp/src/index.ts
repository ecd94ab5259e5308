// Paid MCP tools, resources and prompts (draft-payment-transport-mcp-00): the server side wraps a
// transport (`@mppkit/mcp/server`), the client side wraps an SDK client (`@mppkit/mcp/client`).
export * as McpClient from './client/index.js'
export * as McpServer from './server/index.js'

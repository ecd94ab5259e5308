import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import {
  getParseErrorMessage,
  normalizeObjectSchema,
  safeParse,
  safeParseAsync,
} from '@modelcontextprotocol/sdk/server/zod-compat.js'
import { UriTemplate } from '@modelcontextprotocol/sdk/shared/uriTemplate.js'
import {
  CallToolRequestSchema,
  ErrorCode,
  GetPromptRequestSchema,
  McpError,
  ReadResourceRequestSchema,
} from '@modelcontextprotocol/sdk/types.js'
import { ConfigurationError } from '@mppkit/core'
import { type CoveredMethod, normalizedUri, type Priced } from './Paywall.js'

/**
 * What the SDK's `McpServer` answers instead of running a target's handler: a JSON-RPC error, or, for a
 * tool, the `isError` result it turns the refusal into.
 *
 * @example
 * ```ts
 * const refusal: Refusal = { error: { code: -32602, message: 'MCP error -32602: Prompt expert disabled' } }
 * ```
 */
export type Refusal =
  | { error: { code: number; message: string; data?: unknown } }
  | { result: { content: { type: 'text'; text: string }[]; isError: true } }

/** A paid request as the SDK will receive it (credential removed, root `_meta` lifted). */
export type Call = { jsonrpc?: unknown; id?: unknown; method: CoveredMethod; params?: unknown }

/**
 * The targets an `McpServer` serves: tells, before a challenge is issued or a credential settled,
 * whether the SDK would refuse a paid call (unknown or disabled tool, prompt or resource; arguments its
 * schema refuses) and with what.
 */
export type Targets = {
  /** The SDK's refusal of this call, or undefined when the SDK would run its handler (or cannot be seen into). */
  refusal(call: Call): Promise<Refusal | undefined>
  /** The priced entries the `McpServer` serves nothing for, now (see {@link unservedBy}). */
  unserved(priced: readonly Priced[]): Priced[]
}

/**
 * Reads the registries of an `McpServer` (`@modelcontextprotocol/sdk` 1.32.x), which has no public
 * lookup: its tools, prompts, resources and resource templates with their `enabled` flags, and the
 * tool-argument validation it runs itself. Each check mirrors the SDK's own handler, in its order, so
 * that a paid call is settled only when the SDK will run the handler. MCP carries no Idempotency-Key:
 * a JSON-RPC error after settlement would lose the payment.
 *
 * A method served by a handler of the application's own (`mcp.server.setRequestHandler`) is not checked
 * (nothing here can tell what it accepts).
 *
 * @example
 * ```ts
 * import * as Targets from './Targets.js'
 * const targets = Targets.of(mcp)
 * await targets.refusal({ method: 'tools/call', params: { name: 'forecast' } }) // undefined: it runs
 * ```
 * @see draft-payment-transport-mcp-00 §Payment Receipt ("After successful payment verification and settlement")
 */
export function of(mcp: McpServer): Targets {
  const internals = internalsOf(mcp)
  return {
    async refusal(call) {
      const handled = handlerRefusal(internals, call.method)
      if (handled !== 'mcp') return handled
      if (call.method === 'tools/call') return toolRefusal(internals, call)
      if (call.method === 'prompts/get') return promptRefusal(internals, call)
      return resourceRefusal(internals, call)
    },
    unserved: (priced) => unservedBy(internals, priced),
  }
}

/**
 * The priced entries the `McpServer` serves nothing for: a tool or prompt it has not registered, a
 * resource URI none of its resources or templates serves, a priced URI template that is none of its
 * templates and matches none of its resources. Such a price never applies (a misspelt `forcast` leaves
 * `forecast` free). A method the application serves with its own request handler is not seen into.
 *
 * @example
 * ```ts
 * Targets.of(mcp).unserved(paywall.priced) // [{ method: 'tools/call', key: 'forcast', … }]
 * ```
 */
function unservedBy(internals: Internals, priced: readonly Priced[]): Priced[] {
  return priced.filter((entry) => {
    const handled = handlerRefusal(internals, entry.method)
    if (handled === undefined) return false
    if (handled !== 'mcp') return true
    if (entry.method === 'tools/call') return !internals._registeredTools[entry.key]
    if (entry.method === 'prompts/get') return !internals._registeredPrompts[entry.key]
    const templates = Object.values(internals._registeredResourceTemplates).map(
      (template) => template.resourceTemplate.uriTemplate,
    )
    if (UriTemplate.isTemplate(entry.key)) {
      if (templates.some((template) => String(template) === entry.key)) return false
      const priced = new UriTemplate(entry.key)
      return !Object.keys(internals._registeredResources).some((uri) => matches(priced, uri))
    }
    const uri = normalizedUri(entry.key)
    if (internals._registeredResources[uri]) return false
    return !templates.some((template) => matches(template, uri))
  })
}

function matches(template: { match(uri: string): unknown }, uri: string): boolean {
  try {
    return Boolean(template.match(uri))
  } catch {
    return false
  }
}

type Tool = { enabled?: unknown; execution?: { taskSupport?: unknown }; handler?: unknown }
type Prompt = { enabled?: unknown; argsSchema?: unknown }
type Template = { resourceTemplate: { uriTemplate: { match(uri: string): unknown } } }

/** The private members of `McpServer` (1.32.x) the checks read. */
type Internals = {
  _registeredTools: Record<string, Tool | undefined>
  _registeredPrompts: Record<string, Prompt | undefined>
  _registeredResources: Record<string, { enabled?: unknown } | undefined>
  _registeredResourceTemplates: Record<string, Template>
  _toolHandlersInitialized: boolean
  _promptHandlersInitialized: boolean
  _resourceHandlersInitialized: boolean
  validateToolInput(tool: Tool, args: unknown, name: string): Promise<unknown>
  server: { _requestHandlers: Map<string, unknown>; fallbackRequestHandler?: unknown }
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null

/** The McpServer's registries, or a ConfigurationError when this SDK version does not have them. */
function internalsOf(mcp: McpServer): Internals {
  const found = mcp as unknown as Partial<Internals> | undefined
  if (
    isRecord(found) &&
    isRecord(found._registeredTools) &&
    isRecord(found._registeredPrompts) &&
    isRecord(found._registeredResources) &&
    isRecord(found._registeredResourceTemplates) &&
    typeof found._toolHandlersInitialized === 'boolean' &&
    typeof found._promptHandlersInitialized === 'boolean' &&
    typeof found._resourceHandlersInitialized === 'boolean' &&
    typeof found.validateToolInput === 'function' &&
    isRecord(found.server) &&
    found.server._requestHandlers instanceof Map
  )
    return found as Internals
  throw new ConfigurationError(
    'payments.transport(t, mcp) needs an McpServer of @modelcontextprotocol/sdk 1.32.x (its tool, prompt ' +
      'and resource registries are read to settle only calls the SDK will run); for a server that is not ' +
      'one, payments.transport(t, { unchecked: true }) checks nothing (calls it refuses are settled first)',
  )
}

const initialized = {
  'tools/call': '_toolHandlersInitialized',
  'prompts/get': '_promptHandlersInitialized',
  'resources/read': '_resourceHandlersInitialized',
} as const

/**
 * Who answers `method`: the McpServer's own handler (`'mcp'`, checked here), a handler of the
 * application's (undefined: not seen into), or nobody: the SDK's `-32601`.
 */
function handlerRefusal(internals: Internals, method: CoveredMethod): Refusal | undefined | 'mcp' {
  if (internals[initialized[method]]) return 'mcp'
  if (internals.server._requestHandlers.has(method) || internals.server.fallbackRequestHandler)
    return undefined
  return { error: { code: ErrorCode.MethodNotFound, message: 'Method not found' } }
}

/** The SDK's `Protocol` answer to an error thrown by a request handler. */
function errorOf(error: unknown): Refusal {
  const { code, message, data } = isRecord(error) ? error : ({} as Record<string, unknown>)
  return {
    error: {
      code: typeof code === 'number' && Number.isSafeInteger(code) ? code : ErrorCode.InternalError,
      message: typeof message === 'string' ? message : 'Internal error',
      ...(data !== undefined && { data }),
    },
  }
}

/** The params of a call as the SDK's request schema parses them, or its refusal (the parse throws). */
function parsed<T>(schema: Parameters<typeof safeParse>[0], call: Call): { params: T } | Refusal {
  const result = safeParse(schema, call)
  if (!result.success) return errorOf(result.error)
  return { params: (result.data as { params: T }).params }
}

/** The SDK's `tools/call` turns every refusal but a URL elicitation into an `isError` result. */
function toolError(error: unknown): Refusal {
  if (error instanceof McpError && error.code === ErrorCode.UrlElicitationRequired) return errorOf(error)
  const text = error instanceof Error ? error.message : String(error)
  return { result: { content: [{ type: 'text', text }], isError: true } }
}

async function toolRefusal(internals: Internals, call: Call): Promise<Refusal | undefined> {
  const request = parsed<{ name: string; arguments?: unknown; task?: unknown }>(CallToolRequestSchema, call)
  if (!('params' in request)) return request
  const { name } = request.params
  // The lookups of McpServer's `tools/call` handler, in its order.
  const tool = internals._registeredTools[name]
  if (!tool) return toolError(new McpError(ErrorCode.InvalidParams, `Tool ${name} not found`))
  if (!tool.enabled) return toolError(new McpError(ErrorCode.InvalidParams, `Tool ${name} disabled`))
  const taskSupport = tool.execution?.taskSupport
  const handler = tool.handler
  const isTaskHandler =
    (typeof handler === 'object' || typeof handler === 'function') &&
    handler !== null &&
    'createTask' in handler
  if ((taskSupport === 'required' || taskSupport === 'optional') && !isTaskHandler)
    return toolError(
      new McpError(
        ErrorCode.InternalError,
        `Tool ${name} has taskSupport '${taskSupport}' but was not registered with registerToolTask`,
      ),
    )
  if (taskSupport === 'required' && !request.params.task)
    return toolError(
      new McpError(
        ErrorCode.MethodNotFound,
        `Tool ${name} requires task augmentation (taskSupport: 'required')`,
      ),
    )
  try {
    // The SDK's own validation (element ceiling, then the input schema), run on the same arguments.
    await internals.validateToolInput(tool, request.params.arguments, name)
  } catch (error) {
    return toolError(error)
  }
  return undefined
}

async function promptRefusal(internals: Internals, call: Call): Promise<Refusal | undefined> {
  const request = parsed<{ name: string; arguments?: unknown }>(GetPromptRequestSchema, call)
  if (!('params' in request)) return request
  const { name } = request.params
  const prompt = internals._registeredPrompts[name]
  if (!prompt) return errorOf(new McpError(ErrorCode.InvalidParams, `Prompt ${name} not found`))
  if (!prompt.enabled) return errorOf(new McpError(ErrorCode.InvalidParams, `Prompt ${name} disabled`))
  if (!prompt.argsSchema) return undefined
  try {
    const schema = normalizeObjectSchema(prompt.argsSchema as Parameters<typeof normalizeObjectSchema>[0])
    const result = await safeParseAsync(
      schema as Parameters<typeof safeParseAsync>[0],
      request.params.arguments ?? {},
    )
    if (result.success) return undefined
    const message = getParseErrorMessage(result.error)
    return errorOf(new McpError(ErrorCode.InvalidParams, `Invalid arguments for prompt ${name}: ${message}`))
  } catch (error) {
    return errorOf(error)
  }
}

async function resourceRefusal(internals: Internals, call: Call): Promise<Refusal | undefined> {
  const request = parsed<{ uri: string }>(ReadResourceRequestSchema, call)
  if (!('params' in request)) return request
  try {
    // McpServer's `resources/read`: `new URL(uri)`, its exact resources, then its templates in order.
    const uri = new URL(request.params.uri)
    const resource = internals._registeredResources[uri.toString()]
    if (resource) {
      if (!resource.enabled) return errorOf(new McpError(ErrorCode.InvalidParams, `Resource ${uri} disabled`))
      return undefined
    }
    // The SDK serves a template's URIs whatever its `enabled` flag: so does the check.
    for (const template of Object.values(internals._registeredResourceTemplates))
      if (template.resourceTemplate.uriTemplate.match(uri.toString())) return undefined
    return errorOf(new McpError(ErrorCode.InvalidParams, `Resource ${uri} not found`))
  } catch (error) {
    return errorOf(error)
  }
}

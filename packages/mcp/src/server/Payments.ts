import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js'
import { BaseError, ConfigurationError, Jcs, PaymentError, type Receipt } from '@mppkit/core'
import { Mcp, type Outcome, type Problem, type Server } from '@mppkit/core/server'
import {
  argumentsDigest,
  type CoveredMethod,
  compile,
  type Gate,
  type Paywall,
  type Priced,
  type Prices,
} from './Paywall.js'
import * as Targets from './Targets.js'

/**
 * Options of {@link create}.
 *
 * @example
 * ```ts
 * const options: Options = { server, tools: { forecast: [{ method: 'tempo', request: { amount: '1000' } }] } }
 * ```
 */
export type Options = Prices & {
  /** The mppkit server whose pipeline, secrets and Store verify and settle (the same as for HTTP). */
  server: Server.Server
  /** Name used in the synthesized request URL (`mcp://<name>/tools/call/<tool>`), default `mcp`. */
  name?: string
  /** Bind each tool call's arguments into its challenge (default true). */
  bindArguments?: boolean
  /** Called for a paid operation sent as a notification, which is dropped. */
  onDroppedNotification?: (method: string, target: string) => void
  /**
   * Priced targets the `McpServer` registers after `connect` (the SDK allows it). Without this, `connect`
   * and `transport(t, mcp)` throw a `ConfigurationError` naming every priced tool, prompt or resource the
   * server does not serve at that moment: a misspelt `forcast` would leave `forecast` free. Name them by
   * their keys in `tools`, `prompts` and `resources` (each must be priced), or `true` for all of them
   * (then reported once at connect, as a `configuration` error). Until one is registered, a call to it
   * gets the SDK's not-found refusal (no challenge, no settlement) and the first is reported; once
   * registered, it is paid like any other.
   */
  lateRegistration?: boolean | LateRegistration
}

/**
 * The priced targets {@link Options.lateRegistration} lets the `McpServer` register after `connect`, by
 * their keys in the price list.
 *
 * @example
 * ```ts
 * const late: LateRegistration = { tools: ['forecast'], resources: ['data://items/{id}'] }
 * ```
 */
export type LateRegistration = {
  tools?: readonly string[]
  prompts?: readonly string[]
  resources?: readonly string[]
}

/**
 * The second argument of {@link Payments.transport} for a server that is not an `McpServer` (the SDK's
 * low-level `Server`, one of the application's own): nothing is checked before a paid call is settled.
 *
 * @example
 * ```ts
 * await lowLevel.connect(payments.transport(new StdioServerTransport(), { unchecked: true }))
 * ```
 */
export type Unchecked = { unchecked: true }

/**
 * The `experimental.payment` capability object: "Each method object MUST contain an `intents` array".
 *
 * @example
 * ```ts
 * const capability: PaymentCapability = { methods: { tempo: { intents: ['charge'] } } }
 * ```
 * @see draft-payment-transport-mcp-00 §Capability Advertisement
 */
export type PaymentCapability = { methods: Record<string, { intents: string[] }> }

/**
 * Payments for an MCP server: wraps the server's transport so paid tools, resources and prompts answer
 * `-32042` until paid, and carry `org.paymentauth/receipt` once paid.
 *
 * @example
 * ```ts
 * await payments.connect(mcpServer, new StdioServerTransport())
 * ```
 */
export type Payments = {
  /**
   * Connects an `McpServer` through {@link Payments.transport} with the server's handle: a paid call the
   * SDK would refuse (unknown or disabled target, arguments its schema refuses) gets that refusal, and
   * is neither challenged nor settled. Rejects with a `ConfigurationError` when a priced target is not
   * served by the `McpServer` and not named in {@link Options.lateRegistration}, and when `mcp` is not an
   * `McpServer` (there is no unchecked `connect`: see {@link Unchecked}).
   */
  connect(mcp: McpServer, inner: Transport): Promise<void>
  /**
   * Wraps a server transport (stdio, Streamable HTTP, in-memory…) for the `McpServer` connected to the
   * result (as {@link Payments.connect} does): a paid call the SDK would refuse gets that refusal, and is
   * neither challenged nor settled. Throws a `ConfigurationError` when a priced target is not served and
   * not named in {@link Options.lateRegistration}, and when no `McpServer` is given (a call the SDK then
   * refuses would be settled first: MCP carries no Idempotency-Key, so that payment would be lost).
   */
  transport(inner: Transport, mcp: McpServer): Transport
  /**
   * Wraps a server transport for a server that is not an `McpServer` (the SDK's low-level `Server`, one
   * of the application's own), by explicit choice: nothing is checked, so a paid call the server then
   * refuses is settled first and its payment lost. The server's logger and `onError` are told so once
   * (phase `configuration`), however many transports are made this way.
   */
  transport(inner: Transport, options: Unchecked): Transport
  /** The capability advertised in `InitializeResult.capabilities.experimental.payment`. */
  readonly capability: PaymentCapability
}

type Json = Record<string, unknown>
type Message = Json & { id?: string | number; method?: string; params?: Json; _meta?: Json }

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value)

/**
 * A JSON-RPC message with its root-level `_meta` moved where MCP reads it: into `params._meta` of a
 * request or notification (creating `params`), into `result._meta` of a result; dropped otherwise (MCP
 * has no other place for it). "Servers MUST check both locations for `_meta` and MUST NOT require
 * clients to use a specific placement" (§Metadata Placement), but the SDK's message schema is strict and
 * refuses a root `_meta`. Where both carry a key, the root's wins, as `Mcp.credentialOf` reads it first.
 * A batch (array) is lifted message by message; anything else is returned as is.
 *
 * The SDK's Streamable HTTP transport validates a body before the payments transport sees it: hand it
 * the lifted body (`transport.handleRequest(req, res, liftMeta(req.body))`) to accept root `_meta` there.
 *
 * @example
 * ```ts
 * liftMeta({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x' }, _meta: { a: 1 } })
 * // { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x', _meta: { a: 1 } } }
 * ```
 * @see draft-payment-transport-mcp-00 §Metadata Placement
 */
export function liftMeta<T>(message: T): T {
  if (Array.isArray(message)) return message.map((item) => liftMeta(item)) as T
  if (!isObject(message) || !('_meta' in message)) return message
  const { _meta: root, ...rest } = message as Json
  const member = typeof rest.method === 'string' ? 'params' : 'result' in rest ? 'result' : undefined
  if (member === undefined || !isObject(root)) return rest as T
  const target: unknown = rest[member]
  if (target !== undefined && !isObject(target)) return rest as T
  const nested = isObject(target?._meta) ? target._meta : {}
  return { ...rest, [member]: { ...target, _meta: { ...nested, ...root } } } as T
}

/** A copy of the request without the credential in either `_meta`: handlers never see it ("Servers MUST
 * ignore `org.paymentauth/credential` on methods that do not require payment", and "MUST NOT log full
 * credential payloads", §Metadata Placement, §Credential Confidentiality), and the SDK's strict request
 * schema refuses a root-level `_meta`. A paid request's receipt is put where the handler finds it
 * (`extra._meta`). */
function forwarded(message: Message, receipt?: Receipt.Receipt): Message {
  const lifted = liftMeta(message)
  if (!isObject(lifted.params) || !isObject(lifted.params._meta)) {
    if (receipt === undefined) return lifted
    return {
      ...lifted,
      params: { ...(isObject(lifted.params) ? lifted.params : {}), _meta: Mcp.receiptMeta(receipt) },
    }
  }
  const meta: Json = { ...lifted.params._meta }
  delete meta[Mcp.credentialKey]
  if (receipt !== undefined) meta[Mcp.receiptKey] = receipt
  return { ...lifted, params: { ...lifted.params, _meta: meta } }
}

/**
 * Creates MCP payments over an mppkit server: one core pipeline and Store for HTTP and MCP alike.
 *
 * @example
 * ```ts
 * const payments = Payments.create({ server, tools: { forecast: [{ method: 'tempo', request: { amount: '1000' } }] } })
 * await payments.connect(mcpServer, transport)
 * ```
 * @see draft-payment-transport-mcp-00
 */
export function create(options: Options): Payments {
  if (typeof options !== 'object' || options === null) throw new ConfigurationError('options are required')
  refuseUnknownKeys(options)
  if (typeof options.server?.protect !== 'function')
    throw new ConfigurationError('server must be an mppkit server (Server.create)')
  const paywall: Paywall = compile(options)
  const late = lateEntries(options.lateRegistration, paywall.priced)
  // Each priced entry is checked as `server.protect` checks a route (an unknown method, a request its
  // schema refuses…): found now, not as a -32603 on every call.
  for (const { method, key, route } of paywall.priced) {
    try {
      options.server.protect(route, unreachable)
    } catch (error) {
      if (error instanceof ConfigurationError)
        throw new ConfigurationError(`${method} ${key}: ${error.message}`)
      throw error
    }
  }
  const capability: PaymentCapability = { methods: paywall.methods }
  const name = encodeURIComponent(options.name ?? 'mcp')
  const bindArguments = options.bindArguments !== false

  const challengeInput = (gate: Gate, message: Message, headers: unknown) => {
    const { _meta, ...params } = message.params ?? {}
    // A price reads the resource the SDK serves (the gate's normalized URI), not the client's spelling.
    if (gate.method === 'resources/read') params.uri = gate.target
    // Throws on arguments too deep to serialize: the caller answers -32602.
    const init: RequestInit & { body: string } = { method: 'POST', body: JSON.stringify(params) }
    if (isObject(headers)) {
      const copy = new Headers()
      for (const [key, value] of Object.entries(headers)) if (typeof value === 'string') copy.set(key, value)
      copy.set('content-type', 'application/json')
      init.headers = copy
    }
    const request = new CallRequest(`mcp://${name}/${gate.method}/${encodeURIComponent(gate.target)}`, init)
    const digest =
      bindArguments && gate.method !== 'resources/read' ? argumentsDigest(params.arguments) : undefined
    return { route: gate.route, request, digest }
  }

  const authorize: Authorize = async (gate, message, headers, targets) => {
    let input: ReturnType<typeof challengeInput>
    try {
      input = challengeInput(gate, message, headers)
    } catch {
      return invalidParams
    }
    // Checked before a challenge is issued (a push payment moves money as its credential is made) and
    // before a credential is settled: "After successful payment verification and settlement, servers MUST
    // include a receipt" (§Successful Payment Response), and a call the SDK refuses has no result to
    // carry one, nor any Idempotency-Key to get the payment back with.
    // A paid call run as an MCP task (`params.task`) or tied to one (the related-task `_meta` key) gets
    // its answer from the SDK's task machinery, which may refuse it (no task capability, a tool not
    // registered for tasks) or queue it for the task instead of answering it: after settlement, that
    // payment would be lost. Refused before any challenge, in every configuration.
    const refusal = taskRefusal(message) ?? (await targets?.refusal(forwarded(message) as Targets.Call))
    if (refusal) {
      if (targets) reportStillUnserved(gate, targets)
      return { status: 'refused', refusal }
    }
    const credential = Mcp.credentialOf(message)
    if (credential === undefined) return options.server.issueChallenges(input)
    return options.server.authorizePayment({ ...input, credential })
  }

  let uncheckedReported = false
  const isLate = ({ method, key }: Priced) => late === 'all' || late.has(entryId(method, key))
  const toldAtConnect = new Set<string>()
  // A price for a name the McpServer does not serve never applies: a misspelt `forcast` leaves `forecast`
  // free. Refused when the transport is made, unless `lateRegistration` lets it be registered later
  // (McpServer allows that); `lateRegistration: true` names nothing, so what it lets through is told once.
  const checkServed = (targets: Targets.Targets) => {
    const unserved = targets.unserved(paywall.priced)
    const unexpected = unserved.filter((entry) => !isLate(entry))
    if (unexpected.length > 0)
      throw new ConfigurationError(
        `payments price ${described(unexpected)}, which the McpServer does not serve: such a price never ` +
          'applies (a misspelt name leaves the real one free); register it before connecting, fix the name, ' +
          'or name it in lateRegistration if it is registered after connect',
      )
    if (late !== 'all') return
    const fresh = unserved.filter(({ method, key }) => !toldAtConnect.has(entryId(method, key)))
    if (fresh.length === 0) return
    for (const { method, key } of fresh) toldAtConnect.add(entryId(method, key))
    options.server.report(
      new ConfigurationError(
        `payments price ${described(fresh)}, which the McpServer does not serve yet (lateRegistration: ` +
          'true): calls to it are refused until it is registered, and a misspelt name leaves the real one ' +
          'free; name the targets registered later in lateRegistration instead of true',
      ),
      'configuration',
    )
  }
  const pricedById = new Map(paywall.priced.map((entry) => [entryId(entry.method, entry.key), entry]))
  const toldAtCall = new Set<string>()
  // A target left to late registration and still not registered when it is called: the SDK's refusal is
  // the answer (no challenge, no settlement), and the operator is told once.
  const reportStillUnserved = (gate: Gate, targets: Targets.Targets) => {
    const id = entryId(gate.method, gate.key)
    const entry = pricedById.get(id)
    if (entry === undefined || toldAtCall.has(id) || !isLate(entry)) return
    if (targets.unserved([entry]).length === 0) return
    toldAtCall.add(id)
    options.server.report(
      new ConfigurationError(
        `payments price ${described([entry])} (lateRegistration), which the McpServer still does not serve ` +
          'when it is called: such calls are refused, as the SDK refuses an unknown target, until it is ' +
          'registered',
      ),
      'configuration',
    )
  }
  // The calls the SDK would refuse are answered with its refusal, neither challenged nor settled.
  const checked = (inner: Transport, mcp: McpServer) => {
    const targets = Targets.of(mcp)
    checkServed(targets)
    return new PaidTransport(inner, paywall, authorize, targets, capability, options.onDroppedNotification)
  }
  const payments: Payments = {
    capability,
    transport(inner: Transport, mcp: McpServer | Unchecked) {
      if (!isUnchecked(mcp)) return checked(inner, mcp)
      // Said once, however many transports (one per Streamable HTTP session) are made this way.
      if (!uncheckedReported) {
        uncheckedReported = true
        options.server.report(
          new ConfigurationError(
            'payments.transport(t, { unchecked: true }) checks no McpServer: a paid call the server then ' +
              'refuses (an unknown or disabled tool, prompt or resource, arguments its schema refuses) is ' +
              'settled first and its payment lost; with an McpServer, use payments.connect(mcp, t) or ' +
              'payments.transport(t, mcp)',
          ),
          'configuration',
        )
      }
      return new PaidTransport(
        inner,
        paywall,
        authorize,
        undefined,
        capability,
        options.onDroppedNotification,
      )
    },
    async connect(mcp, inner) {
      // Made before `mcp.connect` is read: anything but an McpServer is a ConfigurationError.
      const transport = checked(inner, mcp)
      await mcp.connect(transport)
    },
  }
  return payments
}

/**
 * Whether `transport` was told to check nothing (`{ unchecked: true }`), or was given what must be an
 * `McpServer` (`Targets.of` says when it is not). No McpServer at all is a ConfigurationError: a paid call
 * the SDK then refuses would be settled before the SDK checks it, and MCP carries no Idempotency-Key to
 * get that payment back with.
 */
function isUnchecked(second: unknown): second is Unchecked {
  if (second === undefined || second === null)
    throw new ConfigurationError(
      'payments.transport(t) needs the McpServer connected to it: without it, a paid call the SDK then ' +
        'refuses (an unknown or disabled tool, prompt or resource, arguments its schema refuses) would be ' +
        'settled before the SDK checks it, and that payment lost (MCP carries no Idempotency-Key); use ' +
        'payments.connect(mcp, t) or payments.transport(t, mcp), or, for a server that is not an McpServer ' +
        "(the SDK's low-level Server, one of your own), payments.transport(t, { unchecked: true })",
    )
  if (!isObject(second) || !Object.hasOwn(second, 'unchecked')) return false
  if (second.unchecked === true && Object.keys(second).length === 1) return true
  throw new ConfigurationError(
    'payments.transport(t, options) takes { unchecked: true } and nothing else, for a server that is not ' +
      'an McpServer; give an McpServer otherwise (payments.connect(mcp, t) or payments.transport(t, mcp))',
  )
}

/** The handler of the `protect` call that only checks a route: never called. */
const unreachable = () => new Response(null, { status: 500 })

const optionKeys: readonly (keyof Options)[] = [
  'server',
  'tools',
  'resources',
  'prompts',
  'name',
  'bindArguments',
  'onDroppedNotification',
  'lateRegistration',
]

const entryId = (method: CoveredMethod, key: string) => `${method}\n${key}`

const described = (entries: readonly Priced[]) =>
  entries.map(({ method, key }) => `${method} ${JSON.stringify(key)}`).join(', ')

const lateSections = { tools: 'tools/call', prompts: 'prompts/get', resources: 'resources/read' } as const

/**
 * The priced entries `lateRegistration` lets the McpServer register after connect: all of them, or those
 * named. A name that is not priced is a ConfigurationError (a misspelling there would hide one here).
 */
function lateEntries(option: unknown, priced: readonly Priced[]): 'all' | Set<string> {
  if (option === undefined || option === false) return new Set()
  if (option === true) return 'all'
  const shape = 'lateRegistration must be true, or { tools, prompts, resources } lists of priced keys'
  if (!isObject(option)) throw new ConfigurationError(shape)
  const named = new Set<string>()
  for (const [section, keys] of Object.entries(option)) {
    if (!Object.hasOwn(lateSections, section)) throw new ConfigurationError(shape)
    if (keys === undefined) continue
    if (!Array.isArray(keys)) throw new ConfigurationError(shape)
    const method = lateSections[section as keyof typeof lateSections]
    for (const key of keys as unknown[]) {
      if (typeof key !== 'string') throw new ConfigurationError(shape)
      if (!priced.some((entry) => entry.method === method && entry.key === key))
        throw new ConfigurationError(
          `lateRegistration names ${section} ${JSON.stringify(key)}, which ${section} does not price`,
        )
      named.add(entryId(method, key))
    }
  }
  return named
}

const squash = (key: string) => key.replace(/[-_\s]/g, '').toLowerCase()

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1))
      previous = current
    }
  }
  return row[b.length]!
}

/** An unknown option is a ConfigurationError: a `tool:` section would leave every tool free. */
function refuseUnknownKeys(options: object): void {
  for (const key of Object.keys(options)) {
    if ((optionKeys as readonly string[]).includes(key)) continue
    const wanted = squash(key).slice(0, 64)
    let best: { key: string; score: number } | undefined
    for (const known of optionKeys) {
      const score = distance(wanted, squash(known))
      if (score <= 2 && (!best || score < best.score)) best = { key: known, score }
    }
    const shown = JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key)
    throw new ConfigurationError(
      `unknown option ${shown}${best ? ` (did you mean ${best.key}?)` : ''}: known options are ${optionKeys.join(', ')}`,
    )
  }
}

/**
 * The synthesized request a dynamic price receives: its JSON body (`{ name, arguments }` or `{ uri }`)
 * can be read any number of times, since one call may be priced more than once (verification, then a
 * fresh challenge).
 */
class CallRequest extends Request {
  readonly #body: string
  constructor(url: string, init: RequestInit & { body: string }) {
    super(url, init)
    this.#body = init.body
  }
  override text(): Promise<string> {
    return Promise.resolve(this.#body)
  }
  override json(): Promise<any> {
    return Promise.resolve(JSON.parse(this.#body))
  }
}

/** Arguments that cannot be serialized (too deep): "Invalid params", never a crash. */
/** The `_meta` key that ties a request to an MCP task (SDK 1.32: its answer is queued for that task). */
const relatedTaskKey = 'io.modelcontextprotocol/related-task'

/** A paid call as an MCP task, or tied to one: refused (-32602), never challenged nor settled. */
function taskRefusal(message: Message): Targets.Refusal | undefined {
  const params = message.params
  if (!isObject(params)) return undefined
  const tied = [params._meta, message._meta].some((meta) => isObject(meta) && relatedTaskKey in meta)
  if (params.task === undefined && !tied) return undefined
  return {
    error: {
      code: -32602,
      message:
        'MCP error -32602: a paid call cannot run as an MCP task (params.task, or a related task in _meta)',
    },
  }
}

const invalidParams: Problem = {
  status: 'problem',
  error: new PaymentError({
    type: 'malformed-credential',
    title: 'Invalid params',
    status: 400,
    detail: 'The request parameters could not be read.',
  }),
  challenges: [],
}

/** A call the SDK would refuse: answered with that refusal, never challenged or settled. */
type Refused = { status: 'refused'; refusal: Targets.Refusal }

type Authorize = (
  gate: Gate,
  message: Message,
  headers: unknown,
  targets: Targets.Targets | undefined,
) => Promise<Outcome | Refused>

type Paid = Extract<Outcome, { status: 'paid' }>

/**
 * A paid request handed to the SDK: its own JSON-RPC id, the paid outcome that gets its response.
 * The SDK sees it under a fresh id (see {@link PaidTransport}).
 */
type InFlight = { id: string | number; paid: Paid }

/**
 * A transport between the MCP server and its real transport: every request is seen before the SDK
 * parses it, and every response before it is sent.
 *
 * A paid request reaches the SDK under a fresh JSON-RPC id, unique to it, and its response is sent
 * under the client's id again: a client reusing an id while a paid call runs (or two peers of one
 * multiplexed transport sending the same id) can neither take that call's receipt nor settle its
 * outcome with another response. The paid handler's `extra.requestId` is that fresh id.
 */
class PaidTransport implements Transport {
  readonly #inner: Transport
  readonly #paywall: Paywall
  readonly #authorize: Authorize
  readonly #targets: Targets.Targets | undefined
  readonly #capability: PaymentCapability
  readonly #onDropped: ((method: string, target: string) => void) | undefined
  /** Paid requests in flight, by the id the SDK sees them under (never a client's). */
  readonly #paid = new Map<string, InFlight>()
  #initializeId: string | number | undefined
  onmessage?: Transport['onmessage']

  constructor(
    inner: Transport,
    paywall: Paywall,
    authorize: Authorize,
    targets: Targets.Targets | undefined,
    capability: PaymentCapability,
    onDropped: ((method: string, target: string) => void) | undefined,
  ) {
    this.#inner = inner
    this.#paywall = paywall
    this.#authorize = authorize
    this.#targets = targets
    this.#capability = capability
    this.#onDropped = onDropped
    inner.onmessage = (message, extra) => this.#receive(message as unknown as Message, extra)
    if (inner.setProtocolVersion)
      this.setProtocolVersion = (version: string) => inner.setProtocolVersion?.(version)
  }

  setProtocolVersion?: (version: string) => void

  get sessionId(): string | undefined {
    return this.#inner.sessionId
  }
  get onclose() {
    return this.#inner.onclose
  }
  set onclose(handler) {
    this.#inner.onclose = handler
  }
  get onerror() {
    return this.#inner.onerror
  }
  set onerror(handler) {
    this.#inner.onerror = handler
  }

  start(): Promise<void> {
    return this.#inner.start()
  }
  close(): Promise<void> {
    return this.#inner.close()
  }

  #deliver(message: Message, extra: Parameters<NonNullable<Transport['onmessage']>>[1]) {
    this.onmessage?.(message as never, extra)
  }

  #receive(message: Message, extra: Parameters<NonNullable<Transport['onmessage']>>[1]): void {
    if (!isObject(message) || typeof message.method !== 'string') {
      this.#deliver(liftMeta(message), extra)
      return
    }
    if (message.id !== undefined && message.id !== null && this.#paid.has(message.id as string)) {
      // The id a paid call runs under, sent back by a peer that learned it: refused, so that nothing but
      // that call's own response is taken for it. "The request ID MUST NOT have been previously used by
      // the requestor within the same session" (MCP, Requests).
      this.#reply(message.id, { code: invalidRequest, message: 'Invalid Request: request id in use' })
      return
    }
    if (message.method === 'notifications/cancelled') {
      this.#cancel(message, extra)
      return
    }
    if (message.method === 'initialize' && message.id !== undefined) this.#initializeId = message.id
    const gate = this.#paywall.gateOf(message.method, message.params)
    if (!gate) {
      // "Servers MUST ignore `org.paymentauth/credential` on methods that do not require payment"
      // (§Metadata Placement): removed from both placements, so that a free request is answered (the
      // SDK refuses a root `_meta`) and its credential never reaches a handler or an error text.
      this.#deliver(forwarded(message), extra)
      return
    }
    // "Servers MUST NOT process payment-gated operations invoked as notifications. Servers SHOULD
    // silently drop such notifications" (§Notifications)
    if (message.id === undefined || message.id === null) {
      this.#onDropped?.(gate.method, gate.target)
      return
    }
    const id = message.id
    this.#authorize(gate, message, extra?.requestInfo?.headers, this.#targets).then(
      (outcome) => {
        if (outcome.status === 'paid') {
          const key = `${inFlightPrefix}${globalThis.crypto.randomUUID()}`
          this.#paid.set(key, { id, paid: outcome })
          return this.#deliver({ ...forwarded(message, outcome.receipt), id: key }, extra)
        }
        if (outcome.status === 'refused') return this.#answer(id, outcome.refusal)
        if (outcome.status === 'replay') return this.#replay(id, outcome)
        return this.#reply(id, Mcp.toJsonRpcError(outcome))
      },
      () => this.#reply(id, { code: Mcp.codes.internalError, message: 'Internal error' }),
    )
  }

  /**
   * A cancellation reaches the request the client named and every paid call it sent under that id (the
   * SDK knows them by their own ids). The SDK answers a cancelled call with nothing, so its entry goes:
   * the payment stays settled, as one whose client went away over HTTP.
   */
  #cancel(message: Message, extra: Parameters<NonNullable<Transport['onmessage']>>[1]): void {
    const forward = forwarded(message)
    this.#deliver(forward, extra)
    const requestId = isObject(message.params) ? message.params.requestId : undefined
    if (requestId === undefined || requestId === null) return
    for (const [key, call] of this.#paid) {
      if (call.id !== requestId) continue
      this.#paid.delete(key)
      this.#deliver({ ...forward, params: { ...forward.params, requestId: key } }, extra)
    }
  }

  #send(id: string | number, body: Json): void {
    this.#inner
      .send({ jsonrpc: '2.0', id, ...body } as never, { relatedRequestId: id })
      .catch((cause) => this.#inner.onerror?.(cause instanceof Error ? cause : new Error(String(cause))))
  }

  #reply(id: string | number, error: Json): void {
    this.#send(id, { error })
  }

  /** The SDK's own refusal of a call it would not run: no challenge, no settlement, no receipt. */
  #answer(id: string | number, refusal: Targets.Refusal): void {
    this.#send(id, refusal)
  }

  #replay(id: string | number, outcome: Extract<Outcome, { status: 'replay' }>): void {
    let parsed: unknown
    try {
      parsed = Jcs.parse(outcome.response.body)
    } catch {}
    if (!isObject(parsed)) {
      this.#reply(id, { code: Mcp.codes.internalError, message: 'Internal error' })
      return
    }
    const result = parsed
    const meta = isObject(result._meta) ? result._meta : {}
    this.#inner
      .send(
        {
          jsonrpc: '2.0',
          id,
          result: { ...result, _meta: { ...meta, ...Mcp.receiptMeta(outcome.receipt) } },
        } as never,
        {
          relatedRequestId: id,
        },
      )
      .catch(() => {})
  }

  async send(message: Parameters<Transport['send']>[0], options?: Parameters<Transport['send']>[1]) {
    // Anything the SDK sends about a paid call (progress, a request to the client, its response) is
    // about the client's id.
    const related = options?.relatedRequestId
    const relatedCall = typeof related === 'string' ? this.#paid.get(related) : undefined
    if (options && relatedCall) options = { ...options, relatedRequestId: relatedCall.id }
    const response = message as unknown as Message & { result?: unknown; error?: unknown }
    const id = response.id
    if (id !== undefined && id !== null && response.method === undefined) {
      if (id === this.#initializeId && isObject(response.result)) {
        this.#initializeId = undefined
        message = withCapability(response, this.#capability) as never
      }
      const call = typeof id === 'string' ? this.#paid.get(id) : undefined
      if (call) {
        this.#paid.delete(id as string)
        const { paid } = call
        if (isObject(response.result)) {
          const meta = isObject(response.result._meta) ? response.result._meta : {}
          // "Servers MUST return `org.paymentauth/receipt` on every successful response to a paid
          // request." (§Successful Payment Response)
          const result = { ...response.result, _meta: { ...meta, ...Mcp.receiptMeta(paid.receipt) } }
          message = { ...response, id: call.id, result } as never
          paid.delivered({ status: 200, headers: [], body: JSON.stringify(response.result) }).catch(() => {})
        } else {
          // Settled but not delivered: an error response carries no receipt; the failure is recorded.
          message = { ...response, id: call.id } as never
          // Named for the operator (code, message, challenge): a bare JSON-RPC error object logs as
          // `Error: object`, and this payment is the one to reconcile.
          const { code, message: text } = (response.error ?? {}) as { code?: unknown; message?: unknown }
          paid
            .failed(
              new BaseError(
                `the paid call was settled (challenge ${paid.receipt.challengeId ?? 'unknown'}) but answered JSON-RPC error ${String(code)}: ${String(text).slice(0, 300)}`,
                { code: 'mcp_settled_not_delivered' },
              ),
            )
            .catch(() => {})
        }
      }
    }
    return this.#inner.send(message, options)
  }
}

/** JSON-RPC "Invalid Request". */
const invalidRequest = -32600

/** The ids paid calls run under in the SDK: this prefix and a random UUID (122 bits: never guessed). */
const inFlightPrefix = 'org.paymentauth/paid/'

/** "servers SHOULD advertise payment support in the `InitializeResult`" (§MCP Capability Advertisement). */
function withCapability(response: Message & { result?: unknown }, capability: PaymentCapability): Message {
  const result = response.result as Json
  const capabilities = isObject(result.capabilities) ? result.capabilities : {}
  const experimental = isObject(capabilities.experimental) ? capabilities.experimental : {}
  if (experimental.payment !== undefined || Object.keys(capability.methods).length === 0) return response
  return {
    ...response,
    result: {
      ...result,
      capabilities: { ...capabilities, experimental: { ...experimental, payment: capability } },
    },
  }
}

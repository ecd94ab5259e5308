import type { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js'
import type { RequestOptions } from '@modelcontextprotocol/sdk/shared/protocol.js'
import { McpError } from '@modelcontextprotocol/sdk/types.js'
import type { Client as CoreClient, Payment } from '@mppkit/core/client'
import { BaseError, Challenge, type Receipt } from '@mppkit/core/client'

/** The `_meta` key of a credential. @see draft-payment-transport-mcp-00 §Transmitting Payment Data */
export const credentialKey = 'org.paymentauth/credential'
/** The `_meta` key of a receipt. @see draft-payment-transport-mcp-00 §Successful Payment Response */
export const receiptKey = 'org.paymentauth/receipt'
/** "Payment Required" */
export const paymentRequiredCode = -32042
/** "Payment Verification Failed" */
export const verificationFailedCode = -32043

/**
 * A payment over MCP that did not go through: the server refused the credential (`-32043`), asked for
 * payment again, or sent challenges that cannot be read. Never swallowed into a tool result.
 *
 * @example
 * ```ts
 * try { await paid.callTool({ name: 'forecast' }) } catch (error) { if (error instanceof McpPaymentError) console.log(error.failure) }
 * ```
 * @see draft-payment-transport-mcp-00 §Payment Verification Failure
 */
export class McpPaymentError extends BaseError {
  override name = 'McpPaymentError'
  /** The JSON-RPC error code the server answered (-32042, -32043, -32602…), if any. */
  readonly jsonRpcCode: number | undefined
  /** The server's `failure` object (`reason`, `detail`), if any. */
  readonly failure: { reason?: string; detail?: string } | undefined
  /** The challenge that was paid, if a payment was made. */
  readonly challenge: Challenge.Challenge | undefined
  /**
   * True when the paid call failed without an answer on the payment (a timeout, a cancellation, a closed
   * transport, an unrelated error): the server may have settled the credential. The payment stays booked
   * in the client's Ledger; check before paying again (`mayHaveSettled(error)` of `@mppkit/core/client`).
   */
  readonly mayHaveSettled: boolean

  constructor(
    message: string,
    options: {
      code: string
      jsonRpcCode?: number
      failure?: { reason?: string; detail?: string } | undefined
      challenge?: Challenge.Challenge
      cause?: unknown
      mayHaveSettled?: boolean
    },
  ) {
    super(message, { code: options.code, cause: options.cause })
    this.jsonRpcCode = options.jsonRpcCode
    this.failure = options.failure
    this.challenge = options.challenge
    this.mayHaveSettled = options.mayHaveSettled === true
  }
}

/** A result of a paid call: the SDK's result, and the receipt when a payment was made. */
export type Paid<result> = result & { receipt: Receipt.Receipt | undefined }

type Params = { _meta?: Record<string, unknown> | undefined; [key: string]: unknown }

/**
 * An MCP client that pays: `callTool`, `readResource` and `getPrompt` pay a `-32042` once with the
 * core client's methods and spend policy, then retry with the credential in `params._meta`.
 *
 * @example
 * ```ts
 * const result = await paid.callTool({ name: 'forecast', arguments: { city: 'Paris' } })
 * console.log(result.receipt?.reference)
 * ```
 */
export type PaidClient<client extends McpClient = McpClient> = {
  /** The wrapped SDK client (unpaid calls, listing, closing). */
  readonly mcp: client
  callTool(
    params: Parameters<client['callTool']>[0],
    options?: RequestOptions,
  ): Promise<Paid<Awaited<ReturnType<client['callTool']>>>>
  readResource(
    params: Parameters<client['readResource']>[0],
    options?: RequestOptions,
  ): Promise<Paid<Awaited<ReturnType<client['readResource']>>>>
  getPrompt(
    params: Parameters<client['getPrompt']>[0],
    options?: RequestOptions,
  ): Promise<Paid<Awaited<ReturnType<client['getPrompt']>>>>
}

/**
 * The client capabilities that advertise payment support in the `InitializeRequest`: "Clients SHOULD
 * advertise" `capabilities.experimental.payment` with the methods and intents they pay with.
 *
 * @example
 * ```ts
 * const mcp = new Client({ name: 'agent', version: '1.0.0' }, { capabilities: capabilities([tempo({ account })]) })
 * ```
 * @see draft-payment-transport-mcp-00 §MCP Capability Advertisement
 */
export function capabilities(methods: readonly { definition: { name: string; intent: string } }[]): {
  experimental: { payment: { methods: Record<string, { intents: string[] }> } }
} {
  const byName: Record<string, { intents: string[] }> = {}
  for (const { definition } of methods) {
    const entry = byName[definition.name] ?? { intents: [] }
    byName[definition.name] = entry
    if (!entry.intents.includes(definition.intent)) entry.intents.push(definition.intent)
  }
  return { experimental: { payment: { methods: byName } } }
}

/**
 * The most challenge text one payment error may carry, in characters of the challenges' JSON (64 KiB, as
 * `Challenge.maxHeaderLength` bounds a `WWW-Authenticate`): past it none is read, so a hostile server
 * cannot make a client validate, rank and quote without bound.
 *
 * @see draft-httpauth-payment-00 §9.4: "Servers SHOULD keep challenges under 8KB. Clients MUST be able to
 *   handle challenges of at least 4KB."
 */
export const maxChallengesLength = Challenge.maxHeaderLength

type Read = { challenges: Challenge.Challenge[]; tooLarge: boolean }

function readChallenges(error: unknown): Read {
  const none = { challenges: [], tooLarge: false }
  if (!(error instanceof McpError)) return none
  if (error.code !== paymentRequiredCode && error.code !== verificationFailedCode) return none
  const data = error.data as { challenges?: unknown } | undefined
  if (!Array.isArray(data?.challenges)) return none
  let length = 0
  for (const challenge of data.challenges) {
    // A JSON message's own values: only a cycle or a value too deep (the SDK's in-memory transport
    // passes objects) can fail to serialize, and then nothing is read.
    try {
      length += JSON.stringify(challenge)?.length ?? 0
    } catch {
      return { challenges: [], tooLarge: true }
    }
    if (length > maxChallengesLength) return { challenges: [], tooLarge: true }
  }
  const valid: Challenge.Challenge[] = []
  for (const challenge of data.challenges) {
    try {
      // "Clients SHOULD validate challenge structure before fulfilling payment." (§Capability Advertisement)
      Challenge.validate(challenge)
      if (typeof challenge.request !== 'object' || challenge.request === null) continue
      // The credential echoes the challenge, its request JCS-encoded ("both parties MUST canonicalize
      // `request` using JSON Canonicalization Scheme", §Challenge): a request that cannot be encoded
      // (nested past `Jcs.maxDepth`) would fail only once the payload exists, after the money moved.
      Challenge.encodeRequest(challenge.request)
      if (challenge.opaque !== undefined) Challenge.decodeObject(challenge.opaque, 'opaque')
      valid.push(challenge)
    } catch {}
  }
  return { challenges: valid, tooLarge: false }
}

/**
 * The challenges of a `-32042`/`-32043` error, validated and encodable; [] when it is not a payment
 * error, or when they exceed {@link maxChallengesLength}.
 *
 * @example
 * ```ts
 * const challenges = challengesOf(error) // from a callTool rejected with McpError -32042
 * ```
 * @see draft-payment-transport-mcp-00 §Payment Required Signaling
 */
export function challengesOf(error: unknown): Challenge.Challenge[] {
  return readChallenges(error).challenges
}

const base64urlAlphabet = /[-_]/g

function bytesOfBase64url(text: string): Uint8Array {
  const binary = atob(text.replace(base64urlAlphabet, (c) => (c === '-' ? '+' : '/')))
  return Uint8Array.from(binary, (c) => c.charCodeAt(0))
}

// The digest mppkit's server binds a tool call's or prompt's arguments with (`sha-256=:…:` of their JCS
// form); undefined when they cannot be encoded. Web Crypto, so that the client stays browser-safe.
async function argumentsDigest(args: unknown): Promise<string | undefined> {
  let canonical: Uint8Array
  try {
    const value = args ?? {}
    if (typeof value !== 'object' || Array.isArray(value)) return undefined
    canonical = bytesOfBase64url(Challenge.encodeRequest(value as Record<string, unknown>))
  } catch {
    return undefined
  }
  const hash = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', canonical as BufferSource))
  return `sha-256=:${btoa(String.fromCharCode(...hash))}:`
}

const sha256Member = /^\s*sha-256\s*=\s*:([A-Za-z0-9+/=]+):\s*$/i

/** A resource URI as the SDK's `resources/read` (and mppkit's paywall) resolves it: `new URL(uri).href`. */
function normalizedUri(uri: string): string {
  try {
    return new URL(uri).href
  } catch {
    return uri
  }
}

/**
 * Whether a challenge may pay for this call: one that names another operation or target
 * (`opaque.mcp`, as mppkit's server binds them) or whose `digest` binds other arguments is for another
 * call, and is never paid. A challenge that binds nothing is the server's to answer for.
 *
 * @see draft-payment-transport-mcp-00 §Confused Deputy: clients "SHOULD … Validate that challenge
 *   parameters match the requested operation"
 */
function boundToCall(
  challenge: Challenge.Challenge,
  call: { operation: string; target: string; digest: string | undefined },
): boolean {
  if (challenge.opaque !== undefined) {
    const bound = Challenge.decodeObject(challenge.opaque, 'opaque').mcp
    if (bound !== undefined) {
      const targets =
        call.operation === 'resources/read' ? [call.target, normalizedUri(call.target)] : [call.target]
      if (!targets.some((target) => bound === `${call.operation} ${target}`)) return false
    }
  }
  if (challenge.digest !== undefined && call.operation !== 'resources/read') {
    const members = challenge.digest.split(',').map((member) => sha256Member.exec(member)?.[1])
    const sha256 = members.filter((member) => member !== undefined)
    // A digest in another algorithm only cannot be checked here; a sha-256 one must bind these arguments.
    if (
      sha256.length > 0 &&
      (call.digest === undefined || !sha256.every((m) => `sha-256=:${m}:` === call.digest))
    )
      return false
  }
  return true
}

/** The receipt of a result, when it is a well-formed receipt for `challengeId`. */
export function receiptOf(result: unknown, challengeId?: string): Receipt.Receipt | undefined {
  const meta = (result as { _meta?: unknown } | undefined)?._meta
  if (typeof meta !== 'object' || meta === null) return undefined
  const receipt = (meta as Record<string, unknown>)[receiptKey] as Receipt.Receipt | undefined
  if (typeof receipt !== 'object' || receipt === null) return undefined
  if (receipt.status !== 'success' || typeof receipt.method !== 'string') return undefined
  if (challengeId !== undefined && receipt.challengeId !== challengeId) return undefined
  return receipt
}

function failureOf(error: McpError): { reason?: string; detail?: string } | undefined {
  const failure = (error.data as { failure?: unknown } | undefined)?.failure
  return typeof failure === 'object' && failure !== null ? (failure as { reason?: string }) : undefined
}

// A target or a server's message as an error names it: bounded, without control characters.
function printable(target: string): string {
  const shown = target.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, '?')
  return shown.length > 100 ? `${shown.slice(0, 100)}…` : shown
}

/**
 * Wraps an MCP SDK client so paid tools, resources and prompts are paid with `client.pay` (any
 * installed rail, the same Ledger and policy as HTTP) and retried once.
 *
 * @example
 * ```ts
 * const paid = wrap(mcp, { client: Client.create({ methods: [tempo({ account })] }) })
 * const result = await paid.callTool({ name: 'forecast' })
 * ```
 * @see draft-payment-transport-mcp-00 §Payment Credential
 */
export function wrap<client extends McpClient>(
  mcp: client,
  options: { client: CoreClient.Client; name?: string },
): PaidClient<client> {
  const serverName = () => encodeURIComponent(options.name ?? mcp.getServerVersion()?.name ?? 'mcp')

  const paidCall = async <result>(
    operation: string,
    target: string,
    params: Params,
    call: (params: Params) => Promise<result>,
    signal: AbortSignal | undefined,
  ): Promise<Paid<result>> => {
    let challenges: Challenge.Challenge[]
    try {
      return Object.assign((await call(params)) as object, { receipt: undefined }) as Paid<result>
    } catch (error) {
      if (!(error instanceof McpError) || error.code !== paymentRequiredCode) throw error
      const read = readChallenges(error)
      if (read.tooLarge)
        throw new McpPaymentError(
          `the server's challenges exceed ${maxChallengesLength} characters: nothing was paid`,
          { code: 'challenge-too-large', jsonRpcCode: error.code },
        )
      if (read.challenges.length === 0)
        throw new McpPaymentError('the server asked for payment without a readable challenge', {
          code: 'no-challenge',
          jsonRpcCode: error.code,
          cause: error,
        })
      const digest =
        operation === 'resources/read' ? undefined : await argumentsDigest(params.arguments ?? {})
      challenges = read.challenges.filter((challenge) =>
        boundToCall(challenge, { operation, target, digest }),
      )
      if (challenges.length === 0)
        throw new McpPaymentError(
          `every challenge the server sent is bound to another call than ${operation} ${printable(target)}: nothing was paid`,
          { code: 'challenge-mismatch', jsonRpcCode: error.code, cause: error },
        )
    }
    const url = `mcp://${serverName()}/${operation}/${encodeURIComponent(target)}`
    // Throws PolicyError or PaymentFailedError (no payable challenge): both reach the caller as they are.
    const payment: Payment = await options.client.pay(challenges, { url, ...(signal ? { signal } : {}) })
    // "Clients MUST send only one credential corresponding to a single selected challenge." (§Multiple Payment Options)
    const retried: Params = {
      ...params,
      _meta: { ...(params._meta ?? {}), [credentialKey]: payment.credential },
    }
    let result: result
    try {
      result = await call(retried)
    } catch (error) {
      // A -32603 carrying a payment problem is the server's "Internal payment error" (rail or store down).
      const paymentProblem =
        error instanceof McpError &&
        error.code === -32603 &&
        typeof (error.data as { problem?: unknown } | undefined)?.problem === 'object'
      // A -32602 is a refused credential only when it carries mppkit's payment problem (a malformed
      // credential): the SDK also answers -32602 after settlement (a target disabled meanwhile, a task
      // result it refuses), and that payment may have gone through (below).
      const refusedCredential =
        error instanceof McpError &&
        error.code === -32602 &&
        typeof (error.data as { problem?: unknown } | undefined)?.problem === 'object'
      if (
        error instanceof McpError &&
        ([paymentRequiredCode, verificationFailedCode].includes(error.code) ||
          refusedCredential ||
          paymentProblem)
      )
        throw new McpPaymentError(`the server refused the payment: ${printable(error.message)}`, {
          code: paymentProblem
            ? 'payment-unavailable'
            : error.code === -32602
              ? 'credential-refused'
              : 'verification-failed',
          jsonRpcCode: error.code,
          failure: failureOf(error),
          challenge: payment.challenge,
          cause: error,
        })
      // The credential was sent and no answer says what became of it: the server may have settled it.
      // Rethrown as is, a timeout would look like any failed call, and calling again pays again.
      throw new McpPaymentError(
        `the paid call failed after the payment was made (${printable(error instanceof Error ? error.message : String(error))}); the payment may have gone through: check before paying again`,
        { code: 'outcome-unknown', challenge: payment.challenge, cause: error, mayHaveSettled: true },
      )
    }
    const receipt = receiptOf(result, payment.challenge.id)
    if (receipt) payment.receipt(receipt)
    return Object.assign(result as object, { receipt }) as Paid<result>
  }

  return {
    mcp,
    callTool: (params, requestOptions) =>
      paidCall(
        'tools/call',
        params.name,
        params,
        (p) => mcp.callTool(p as never, undefined, requestOptions),
        requestOptions?.signal,
      ) as never,
    readResource: (params, requestOptions) =>
      paidCall(
        'resources/read',
        params.uri,
        params,
        (p) => mcp.readResource(p as never, requestOptions),
        requestOptions?.signal,
      ) as never,
    getPrompt: (params, requestOptions) =>
      paidCall(
        'prompts/get',
        params.name,
        params,
        (p) => mcp.getPrompt(p as never, requestOptions),
        requestOptions?.signal,
      ) as never,
  }
}

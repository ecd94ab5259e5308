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

  constructor(
    message: string,
    options: {
      code: string
      jsonRpcCode?: number
      failure?: { reason?: string; detail?: string } | undefined
      challenge?: Challenge.Challenge
      cause?: unknown
    },
  ) {
    super(message, { code: options.code, cause: options.cause })
    this.jsonRpcCode = options.jsonRpcCode
    this.failure = options.failure
    this.challenge = options.challenge
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

/** The challenges of a `-32042`/`-32043` error, validated; [] when it is not a payment error. */
export function challengesOf(error: unknown): Challenge.Challenge[] {
  if (!(error instanceof McpError)) return []
  if (error.code !== paymentRequiredCode && error.code !== verificationFailedCode) return []
  const data = error.data as { challenges?: unknown } | undefined
  if (!Array.isArray(data?.challenges)) return []
  const valid: Challenge.Challenge[] = []
  for (const challenge of data.challenges) {
    try {
      // "Clients SHOULD validate challenge structure before fulfilling payment." (§Capability Advertisement)
      Challenge.validate(challenge)
      if (typeof challenge.request !== 'object' || challenge.request === null) continue
      valid.push(challenge)
    } catch {}
  }
  return valid
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
  ): Promise<Paid<result>> => {
    let challenges: Challenge.Challenge[]
    try {
      return Object.assign((await call(params)) as object, { receipt: undefined }) as Paid<result>
    } catch (error) {
      if (!(error instanceof McpError) || error.code !== paymentRequiredCode) throw error
      challenges = challengesOf(error)
      if (challenges.length === 0)
        throw new McpPaymentError('the server asked for payment without a readable challenge', {
          code: 'no-challenge',
          jsonRpcCode: error.code,
          cause: error,
        })
    }
    const url = `mcp://${serverName()}/${operation}/${encodeURIComponent(target)}`
    // Throws PolicyError or PaymentFailedError (no payable challenge): both reach the caller as they are.
    const payment: Payment = await options.client.pay(challenges, { url })
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
      if (
        error instanceof McpError &&
        ([paymentRequiredCode, verificationFailedCode, -32602].includes(error.code) || paymentProblem)
      )
        throw new McpPaymentError(`the server refused the payment: ${error.message}`, {
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
      throw error
    }
    const receipt = receiptOf(result, payment.challenge.id)
    if (receipt) payment.receipt(receipt)
    return Object.assign(result as object, { receipt }) as Paid<result>
  }

  return {
    mcp,
    callTool: (params, requestOptions) =>
      paidCall('tools/call', params.name, params, (p) =>
        mcp.callTool(p as never, undefined, requestOptions),
      ) as never,
    readResource: (params, requestOptions) =>
      paidCall('resources/read', params.uri, params, (p) =>
        mcp.readResource(p as never, requestOptions),
      ) as never,
    getPrompt: (params, requestOptions) =>
      paidCall('prompts/get', params.name, params, (p) => mcp.getPrompt(p as never, requestOptions)) as never,
  }
}

import { existsSync, readFileSync } from 'node:fs'
import type { DevnetInfo } from './devnet.js'
import { DevnetError } from './errors.js'

/**
 * The rails `startDevnet` knows, in the order it reports them.
 *
 * @example
 * ```ts
 * const rail: DevnetRail = 'lightning'
 * ```
 */
export type DevnetRail = 'tempo' | 'solana' | 'lightning' | 'stripe'

/**
 * Where a rail's node comes from: `embedded` (anvil child process or in-process simulator, the
 * default), `containers` (real images through testcontainers, opt-in with `MPPKIT_DEVNET=containers`)
 * or `external` (a node you run, named by environment variables).
 *
 * @example
 * ```ts
 * const provider: DevnetProvider = process.env.MPPKIT_DEVNET === 'containers' ? 'containers' : 'embedded'
 * ```
 */
export type DevnetProvider = 'embedded' | 'containers' | 'external'

/**
 * How to reach one LND node: the arguments of `lightning`'s `authenticatedLndGrpc`.
 *
 * @example
 * ```ts
 * const { lnd } = authenticatedLndGrpc(node satisfies ExternalLndNode)
 * ```
 */
export type ExternalLndNode = {
  /** `host:port` of LND's gRPC interface. */
  socket: string
  /** Base64 of the PEM `tls.cert`. */
  cert: string
  /** Hex macaroon. */
  macaroon: string
}

/**
 * Real nodes named by environment variables; a rail present here is reported instead of started.
 *
 * @example
 * ```ts
 * const external: ExternalNodes = readExternalNodes({ MPPKIT_TEMPO_RPC_URL: 'http://127.0.0.1:8545' })
 * ```
 */
export type ExternalNodes = {
  tempo?: { rpcUrl: string; privateKeys: `0x${string}`[] }
  solana?: { rpcUrl: string; wsUrl: string; payerSecretKey?: number[] }
  lightning?: { payee: ExternalLndNode; payer?: ExternalLndNode }
  stripe?: { secretKey: string; apiBase: string }
}

/**
 * What `startDevnet` will do for each selected rail.
 *
 * @example
 * ```ts
 * const plan: RailPlan = planDevnet({ rails: ['tempo'], env: process.env })
 * plan.tempo // 'embedded' | 'containers' | 'external'
 * ```
 */
export type RailPlan = Partial<Record<DevnetRail, DevnetProvider>> & { external: ExternalNodes }

type Environment = Readonly<Record<string, string | undefined>>

const set = (value: string | undefined): value is string => value !== undefined && value.trim() !== ''

function configurationError(message: string): DevnetError {
  return new DevnetError(message, { code: 'devnet_configuration' })
}

function httpUrl(name: string, value: string, schemes: string[]): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw configurationError(`${name} is not a URL`)
  }
  if (!schemes.includes(url.protocol))
    throw configurationError(`${name} must use ${schemes.map((scheme) => scheme.slice(0, -1)).join(' or ')}`)
  // Neither the probes nor the rails' clients send URL credentials (fetch refuses them), and the URL is
  // printed: refused up front, without echoing them.
  if (url.username !== '' || url.password !== '')
    throw configurationError(
      `${name} must not contain user:password credentials (not supported); use a URL without them`,
    )
  return url
}

// An external URL's path and query often carry an API key: only its origin is printed.
function originOnly(value: string): string {
  const url = new URL(value)
  const hidden = (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== ''
  return hidden ? `${url.origin} (path and query hidden)` : url.origin
}

/**
 * A copy of `info` fit to print: credentials the user supplied for a real node are replaced by where
 * they came from, and external URLs are reduced to their origin (`scheme://host:port`), since a path or
 * query may carry an API key. The devnet's own throwaway keys (anvil's well-known accounts, per-start
 * simulator keys) are kept, because tests need them.
 *
 * @example
 * ```ts
 * process.stdout.write(`${JSON.stringify(redactExternal(devnet.info))}\n`)
 * ```
 */
export function redactExternal(info: DevnetInfo): DevnetInfo {
  const copy = structuredClone(info)
  if (copy.stripe?.source === 'external') copy.stripe.secretKey = '(from STRIPE_SECRET_KEY)'
  if (copy.lightning?.source === 'external') {
    for (const node of Object.values(copy.lightning.nodes)) if (node) node.macaroon = '(from environment)'
  }
  if (copy.tempo?.source === 'external') {
    copy.tempo.rpcUrl = originOnly(copy.tempo.rpcUrl)
    copy.tempo.accounts = copy.tempo.accounts.map((account) => ({
      ...account,
      privateKey: '0x(from MPPKIT_TEMPO_PRIVATE_KEYS)',
    }))
  }
  if (copy.solana?.source === 'external') {
    copy.solana.rpcUrl = originOnly(copy.solana.rpcUrl)
    copy.solana.wsUrl = originOnly(copy.solana.wsUrl)
    if (copy.solana.payer) copy.solana.payer = { ...copy.solana.payer, secretKey: [] }
  }
  return copy
}

// A credential given either inline or as a path to the file LND writes (tls.cert, admin.macaroon).
function readCredential(value: string): Buffer | string {
  if (!value.includes('\n') && existsSync(value)) return readFileSync(value)
  return value.trim()
}

function lndCert(name: string, value: string): string {
  const content = readCredential(value)
  const text = typeof content === 'string' ? content : content.toString('utf8')
  // `lightning` wants base64 of the PEM file; accept the PEM itself too.
  if (text.includes('-----BEGIN CERTIFICATE-----')) return Buffer.from(text).toString('base64')
  if (/^[A-Za-z0-9+/=\s]+$/.test(text)) return text.replace(/\s/g, '')
  throw configurationError(`${name} is neither a PEM certificate, its base64, nor a readable file`)
}

function lndMacaroon(name: string, value: string): string {
  const content = readCredential(value)
  if (typeof content !== 'string') return content.toString('hex')
  if (/^[0-9a-fA-F]+$/.test(content) && content.length % 2 === 0) return content.toLowerCase()
  if (/^[A-Za-z0-9+/_-]+=*$/.test(content)) return Buffer.from(content, 'base64').toString('hex')
  throw configurationError(`${name} is neither hex, base64, nor a readable macaroon file`)
}

function lndNode(env: Environment, prefix: string): ExternalLndNode | undefined {
  const names = { socket: `${prefix}_SOCKET`, cert: `${prefix}_CERT`, macaroon: `${prefix}_MACAROON` }
  const values = { socket: env[names.socket], cert: env[names.cert], macaroon: env[names.macaroon] }
  const given = Object.values(values).filter(set).length
  if (given === 0) return undefined
  const missing = (Object.keys(names) as (keyof typeof names)[]).filter((key) => !set(values[key]))
  if (missing.length > 0)
    throw configurationError(
      `${missing.map((key) => names[key]).join(', ')} must be set with ${prefix}_SOCKET`,
    )
  const socket = values.socket!.trim()
  if (!/^[^\s/:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(socket))
    throw configurationError(`${names.socket} must be host:port`)
  return {
    socket,
    cert: lndCert(names.cert, values.cert!),
    macaroon: lndMacaroon(names.macaroon, values.macaroon!),
  }
}

/**
 * Reads the environment variables that point the devnet at real nodes. Throws a `DevnetError`
 * (`devnet_configuration`) on a malformed or incomplete value, and refuses a live Stripe key.
 *
 * - Tempo: `MPPKIT_TEMPO_RPC_URL` (+ optional `MPPKIT_TEMPO_PRIVATE_KEYS`, comma-separated funded keys).
 * - Solana: `MPPKIT_SOLANA_RPC_URL` (+ optional `MPPKIT_SOLANA_WS_URL`, default: ws(s) on the RPC port + 1
 *   as `solana-test-validator` serves it; optional `MPPKIT_SOLANA_PAYER_SECRET_KEY`, a solana-keygen JSON array).
 * - Lightning: `MPPKIT_LND_SOCKET`, `MPPKIT_LND_CERT`, `MPPKIT_LND_MACAROON` (the payee, i.e. the
 *   merchant's node) and optionally `MPPKIT_LND_PAYER_SOCKET|CERT|MACAROON`; a cert or macaroon may be
 *   inline (base64 / hex) or a file path.
 * - Stripe: `STRIPE_SECRET_KEY` (`sk_test_…` only; real test mode) and optional `MPPKIT_STRIPE_API_BASE`.
 *
 * @example
 * ```ts
 * const external = readExternalNodes(process.env)
 * if (external.stripe) console.log('Stripe test mode at', external.stripe.apiBase)
 * ```
 */
export function readExternalNodes(env: Environment): ExternalNodes {
  const external: ExternalNodes = {}
  const tempoUrl = env.MPPKIT_TEMPO_RPC_URL
  if (set(tempoUrl)) {
    const privateKeys = (env.MPPKIT_TEMPO_PRIVATE_KEYS ?? '')
      .split(',')
      .map((key) => key.trim())
      .filter((key) => key !== '')
    for (const key of privateKeys)
      if (!/^0x[0-9a-fA-F]{64}$/.test(key))
        throw configurationError(
          'MPPKIT_TEMPO_PRIVATE_KEYS must be comma-separated 0x-prefixed 32-byte hex keys',
        )
    external.tempo = {
      rpcUrl: httpUrl('MPPKIT_TEMPO_RPC_URL', tempoUrl.trim(), ['http:', 'https:']).href,
      privateKeys: privateKeys as `0x${string}`[],
    }
  }
  const solanaUrl = env.MPPKIT_SOLANA_RPC_URL
  if (set(solanaUrl)) {
    const rpc = httpUrl('MPPKIT_SOLANA_RPC_URL', solanaUrl.trim(), ['http:', 'https:'])
    let wsUrl: string
    if (set(env.MPPKIT_SOLANA_WS_URL)) {
      wsUrl = httpUrl('MPPKIT_SOLANA_WS_URL', env.MPPKIT_SOLANA_WS_URL.trim(), ['ws:', 'wss:']).href
    } else {
      // Solana's convention (solana-test-validator, @solana/kit docs): PubSub listens on RPC port + 1.
      const ws = new URL(rpc.href)
      ws.protocol = rpc.protocol === 'https:' ? 'wss:' : 'ws:'
      if (rpc.port !== '') ws.port = String(Number(rpc.port) + 1)
      wsUrl = ws.href
    }
    external.solana = { rpcUrl: rpc.href, wsUrl }
    if (set(env.MPPKIT_SOLANA_PAYER_SECRET_KEY)) {
      let secret: unknown
      try {
        secret = JSON.parse(readCredential(env.MPPKIT_SOLANA_PAYER_SECRET_KEY).toString())
      } catch {
        secret = undefined
      }
      if (
        !Array.isArray(secret) ||
        secret.length !== 64 ||
        !secret.every((byte) => Number.isInteger(byte) && byte >= 0 && byte <= 255)
      )
        throw configurationError(
          'MPPKIT_SOLANA_PAYER_SECRET_KEY must be a 64-byte JSON array or a keypair file',
        )
      external.solana.payerSecretKey = secret as number[]
    }
  }
  const payee = lndNode(env, 'MPPKIT_LND')
  const payer = lndNode(env, 'MPPKIT_LND_PAYER')
  if (payer && !payee)
    throw configurationError('MPPKIT_LND_PAYER_* needs MPPKIT_LND_SOCKET, _CERT and _MACAROON')
  if (payee) external.lightning = payer ? { payee, payer } : { payee }
  const stripeKey = env.STRIPE_SECRET_KEY
  if (set(stripeKey)) {
    // Never a live key: the devnet creates and confirms payments freely.
    if (!stripeKey.trim().startsWith('sk_test_'))
      throw configurationError('STRIPE_SECRET_KEY must be a test-mode key (sk_test_…); live keys are refused')
    const apiBase = set(env.MPPKIT_STRIPE_API_BASE)
      ? httpUrl('MPPKIT_STRIPE_API_BASE', env.MPPKIT_STRIPE_API_BASE.trim(), ['http:', 'https:']).origin
      : 'https://api.stripe.com'
    external.stripe = { secretKey: stripeKey.trim(), apiBase }
  }
  return external
}

/**
 * Decides, without starting anything, where each selected rail's node comes from: an external node
 * when its environment variables are set, otherwise `containers` when `MPPKIT_DEVNET=containers`,
 * otherwise the embedded node.
 *
 * @example
 * ```ts
 * planDevnet({ rails: ['stripe'], env: { STRIPE_SECRET_KEY: 'sk_test_…' } }).stripe // 'external'
 * ```
 */
export function planDevnet(parameters: {
  rails: readonly DevnetRail[]
  env: Environment
  provider?: 'embedded' | 'containers'
}): RailPlan {
  const mode = parameters.provider ?? parameters.env.MPPKIT_DEVNET?.trim() ?? ''
  if (mode !== '' && mode !== 'embedded' && mode !== 'containers')
    throw configurationError('MPPKIT_DEVNET must be "embedded" (the default) or "containers"')
  const external = readExternalNodes(parameters.env)
  const plan: RailPlan = { external: {} }
  for (const rail of parameters.rails) {
    if (external[rail] !== undefined) {
      plan[rail] = 'external'
      ;(plan.external as Record<string, unknown>)[rail] = external[rail]
    } else {
      plan[rail] = mode === 'containers' ? 'containers' : 'embedded'
    }
  }
  return plan
}

import { DevnetError } from './errors.js'
import { type DevnetProvider, type DevnetRail, type ExternalLndNode, planDevnet } from './external.js'
import type { LightningNodeInfo, StartLightningOptions } from './lightning/index.js'
import type { SolanaKeypair, SolanaNodeInfo, StartSolanaOptions } from './solana/index.js'
import type { StartStripeOptions, StripeInfo } from './stripe/index.js'
import type { StartTempoOptions, TempoDevAccount, TempoDevnetInfo } from './tempo/index.js'

// Rails are imported when selected, not up front: module loading (viem, @solana/kit, gRPC) is most
// of a cold start, and a devnet of one rail should not pay for the other three.

export type { DevnetRail } from './external.js'

/**
 * Every rail, in the order `startDevnet` reports them.
 *
 * @example
 * ```ts
 * await startDevnet({ rails: devnetRails.filter((rail) => rail !== 'lightning') })
 * ```
 */
export const devnetRails: readonly DevnetRail[] = ['tempo', 'solana', 'lightning', 'stripe']

/**
 * The Tempo entry of {@link DevnetInfo}: the full node description when the devnet started the node
 * (anvil as a child process or in a container), endpoints only for an external node.
 *
 * @example
 * ```ts
 * if (info.tempo?.source !== 'external') console.log(info.tempo?.escrow)
 * ```
 */
export type DevnetTempoInfo =
  | (TempoDevnetInfo & { source: 'embedded' | 'containers' })
  | { source: 'external'; rpcUrl: string; chainId: number; accounts: TempoDevAccount[] }

/**
 * The Solana entry of {@link DevnetInfo}.
 *
 * @example
 * ```ts
 * const rpc = createSolanaRpc(info.solana!.rpcUrl)
 * ```
 */
export type DevnetSolanaInfo =
  | (SolanaNodeInfo & { source: 'embedded' | 'containers' })
  | { source: 'external'; rpcUrl: string; wsUrl: string; payer?: SolanaKeypair }

/**
 * The Lightning entry of {@link DevnetInfo}: `authenticatedLndGrpc` arguments per node.
 *
 * @example
 * ```ts
 * const { lnd } = authenticatedLndGrpc(info.lightning!.nodes.payee)
 * ```
 */
export type DevnetLightningInfo =
  | {
      source: 'embedded' | 'containers'
      nodes: { payer: LightningNodeInfo; payee: LightningNodeInfo } & Record<string, LightningNodeInfo>
    }
  | { source: 'external'; nodes: { payee: ExternalLndNode; payer?: ExternalLndNode } }

/**
 * The Stripe entry of {@link DevnetInfo}: what `new Stripe(secretKey, { host, port, protocol })` needs.
 *
 * @example
 * ```ts
 * const { secretKey, host, port, protocol } = info.stripe!
 * const stripe = new Stripe(secretKey, { host, port, protocol })
 * ```
 */
export type DevnetStripeInfo =
  | (StripeInfo & { source: 'embedded' })
  | {
      /** `containers`: stripe-mock (no Shared Payment Tokens); `external`: Stripe test mode or a server you named. */
      source: 'containers' | 'external'
      host: string
      port: number
      protocol: 'http' | 'https'
      apiBase: string
      secretKey: string
    }

/**
 * What a running devnet reports: one entry per started rail (absent when the rail was not selected).
 * Plain JSON; `npm run devnet` prints it as one line.
 *
 * @example
 * ```ts
 * const { info } = await startDevnet()
 * console.log(info.tempo?.rpcUrl, info.solana?.rpcUrl, info.stripe?.apiBase)
 * ```
 */
export type DevnetInfo = {
  tempo?: DevnetTempoInfo
  solana?: DevnetSolanaInfo
  lightning?: DevnetLightningInfo
  stripe?: DevnetStripeInfo
}

/**
 * Start-up durations, in milliseconds, overall and per rail.
 *
 * @example
 * ```ts
 * console.log(`devnet up in ${devnet.timings.totalMs.toFixed(0)} ms`)
 * ```
 */
export type DevnetTimings = { totalMs: number; rails: Partial<Record<DevnetRail, number>> }

/**
 * Options of {@link startDevnet}.
 *
 * @example
 * ```ts
 * const options: StartDevnetOptions = { rails: ['tempo', 'stripe'], tempo: { accounts: 4 } }
 * ```
 */
export type StartDevnetOptions = {
  /** Rails to start (default all four). */
  rails?: readonly DevnetRail[]
  /** `embedded` (default) or `containers`; default from `MPPKIT_DEVNET`. External env vars win per rail. */
  provider?: 'embedded' | 'containers'
  /** Environment read for `MPPKIT_DEVNET` and the external-node variables (default `process.env`). */
  env?: Readonly<Record<string, string | undefined>>
  tempo?: StartTempoOptions
  solana?: StartSolanaOptions
  lightning?: StartLightningOptions
  stripe?: StartStripeOptions
}

/**
 * A running devnet.
 *
 * @example
 * ```ts
 * const devnet: RunningDevnet = await startDevnet()
 * await devnet.stop()
 * ```
 */
export type RunningDevnet = {
  info: DevnetInfo
  /** Where each started rail's node comes from. */
  providers: Partial<Record<DevnetRail, DevnetProvider>>
  /** PIDs of child processes the devnet started (anvil), for supervisors and orphan checks. */
  pids: number[]
  timings: DevnetTimings
  /** Stops every node and container the devnet started (never external ones). Safe to call twice. */
  stop(): Promise<void>
}

type Started = { stop(): Promise<void> }

/**
 * Starts the local nodes of the selected rails in parallel — anvil `--network tempo`, the LiteSVM
 * Solana node, the LND-compatible Lightning network and the Stripe simulator — on OS-assigned ports,
 * and returns their endpoints and funded accounts. A rail whose real-node environment variables are
 * set (`MPPKIT_TEMPO_RPC_URL`, `MPPKIT_SOLANA_RPC_URL`, `MPPKIT_LND_SOCKET`/`_CERT`/`_MACAROON`,
 * `STRIPE_SECRET_KEY`) is reported instead of started; `MPPKIT_DEVNET=containers` starts real images
 * through testcontainers instead of the embedded nodes. If any rail fails, the ones already up are
 * stopped and the error is rethrown.
 *
 * @example
 * ```ts
 * const devnet = await startDevnet({ rails: ['tempo', 'stripe'] })
 * try {
 *   console.log(devnet.info.tempo?.rpcUrl, devnet.info.stripe?.apiBase)
 * } finally {
 *   await devnet.stop()
 * }
 * ```
 */
export async function startDevnet(options: StartDevnetOptions = {}): Promise<RunningDevnet> {
  const started = performance.now()
  const rails = [...new Set(options.rails ?? devnetRails)]
  for (const rail of rails)
    if (!devnetRails.includes(rail))
      throw new DevnetError(`unknown rail ${String(rail)}`, { code: 'devnet_bad_option' })
  const plan = planDevnet({
    rails,
    env: options.env ?? process.env,
    ...(options.provider === undefined ? {} : { provider: options.provider }),
  })
  const info: DevnetInfo = {}
  const providers: Partial<Record<DevnetRail, DevnetProvider>> = {}
  const pids: number[] = []
  const timings: DevnetTimings = { totalMs: 0, rails: {} }
  const running: Started[] = []
  const timed = async (rail: DevnetRail, start: () => Promise<void>) => {
    const begin = performance.now()
    await start()
    timings.rails[rail] = performance.now() - begin
  }

  const tasks: Promise<void>[] = []
  const embedded = rails.filter((rail) => plan[rail] === 'embedded')
  const containerRails = rails.filter((rail) => plan[rail] === 'containers')
  for (const rail of rails) providers[rail] = plan[rail]!

  // External nodes: one cheap call proves the endpoint answers before tests rely on it.
  const { external } = plan
  if (external.tempo) {
    const node = external.tempo
    tasks.push(
      timed('tempo', async () => {
        const { tempoRpc } = await import('./tempo/clients.js')
        const { privateKeyToAddress } = await import('viem/accounts')
        const chainId = await tempoRpc<`0x${string}`>(node.rpcUrl, 'eth_chainId', [], 5_000).catch(
          (error: unknown) => {
            throw new DevnetError('MPPKIT_TEMPO_RPC_URL did not answer eth_chainId', {
              code: 'devnet_external_unreachable',
              cause: error,
            })
          },
        )
        info.tempo = {
          source: 'external',
          rpcUrl: node.rpcUrl,
          chainId: Number(chainId),
          accounts: node.privateKeys.map((privateKey) => ({
            address: privateKeyToAddress(privateKey),
            privateKey,
          })),
        }
      }),
    )
  }
  if (external.solana) {
    const node = external.solana
    tasks.push(
      timed('solana', async () => {
        await probeSolana(node.rpcUrl)
        let payer: SolanaKeypair | undefined
        if (node.payerSecretKey) {
          const { createKeyPairSignerFromBytes } = await import('@solana/kit')
          const signer = await createKeyPairSignerFromBytes(Uint8Array.from(node.payerSecretKey))
          payer = { address: signer.address, secretKey: node.payerSecretKey }
        }
        info.solana = {
          source: 'external',
          rpcUrl: node.rpcUrl,
          wsUrl: node.wsUrl,
          ...(payer ? { payer } : {}),
        }
      }),
    )
  }
  if (external.lightning) info.lightning = { source: 'external', nodes: external.lightning }
  if (external.stripe) {
    const url = new URL(external.stripe.apiBase)
    const protocol = url.protocol === 'https:' ? 'https' : 'http'
    info.stripe = {
      source: 'external',
      host: url.hostname,
      port: url.port === '' ? (protocol === 'https' ? 443 : 80) : Number(url.port),
      protocol,
      apiBase: url.origin,
      secretKey: external.stripe.secretKey,
    }
  }

  for (const rail of embedded) {
    if (rail === 'tempo')
      tasks.push(
        timed(rail, async () => {
          const { startTempo } = await import('./tempo/index.js')
          const node = await startTempo(options.tempo)
          running.push(node)
          pids.push(node.pid)
          info.tempo = { source: 'embedded', ...node.info }
        }),
      )
    else if (rail === 'solana')
      tasks.push(
        timed(rail, async () => {
          const { startSolana } = await import('./solana/index.js')
          const node = await startSolana(options.solana)
          running.push(node)
          info.solana = { source: 'embedded', ...node.info }
        }),
      )
    else if (rail === 'lightning')
      tasks.push(
        timed(rail, async () => {
          const { startLightning } = await import('./lightning/index.js')
          const node = await startLightning(options.lightning)
          running.push(node)
          info.lightning = { source: 'embedded', nodes: node.info.nodes }
        }),
      )
    else
      tasks.push(
        timed(rail, async () => {
          const { startStripe } = await import('./stripe/index.js')
          const node = await startStripe(options.stripe)
          running.push(node)
          info.stripe = { source: 'embedded', ...node.info }
        }),
      )
  }
  if (containerRails.length > 0)
    tasks.push(
      (async () => {
        const { startContainerRails } = await import('./containers/provider.js')
        const result = await startContainerRails(containerRails, options)
        running.push(result)
        Object.assign(info, result.info)
        Object.assign(timings.rails, result.timings)
      })(),
    )

  let stopping: Promise<void> | undefined
  const stop = () => {
    stopping ??= Promise.allSettled(running.map((node) => node.stop())).then(() => undefined)
    return stopping
  }
  const results = await Promise.allSettled(tasks)
  const failure = results.find((result): result is PromiseRejectedResult => result.status === 'rejected')
  if (failure) {
    await stop()
    throw failure.reason
  }
  timings.totalMs = performance.now() - started
  // Report rails in a stable order whatever finished first.
  const ordered: DevnetInfo = {}
  for (const rail of devnetRails) if (info[rail] !== undefined) Object.assign(ordered, { [rail]: info[rail] })
  return { info: ordered, providers, pids, timings, stop }
}

async function probeSolana(rpcUrl: string): Promise<void> {
  try {
    const response = await fetch(rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'getVersion' }),
      signal: AbortSignal.timeout(5_000),
    })
    const body = (await response.json()) as { result?: unknown }
    if (body.result === undefined) throw new DevnetError('no result', { code: 'devnet_external_unreachable' })
  } catch (error) {
    throw new DevnetError('MPPKIT_SOLANA_RPC_URL did not answer getVersion', {
      code: 'devnet_external_unreachable',
      cause: error,
    })
  }
}

import type { DevnetInfo, DevnetTimings, StartDevnetOptions } from '../devnet.js'
import { DevnetError } from '../errors.js'
import type { DevnetRail } from '../external.js'
import { createKeypair } from '../solana/keys.js'
import { planContainers } from './plan.js'
import { completeTempoNode, connectLndContainers, solanaContainerInfo } from './rails.js'
import { hasContainerRuntime, startContainers } from './start.js'

/**
 * Starts the selected rails as real images (see `planContainers`) and completes each into the
 * devnet's info shape. Loaded lazily by `startDevnet` only when `MPPKIT_DEVNET=containers`.
 *
 * @example
 * ```ts
 * const { info, stop } = await startContainerRails(['stripe'], {})
 * ```
 */
export async function startContainerRails(
  rails: readonly DevnetRail[],
  options: StartDevnetOptions,
): Promise<{ info: DevnetInfo; timings: DevnetTimings['rails']; stop(): Promise<void> }> {
  const runtime = await hasContainerRuntime()
  if (!runtime.available)
    throw new DevnetError(`MPPKIT_DEVNET=containers but ${runtime.reason}`, {
      code: 'devnet_containers_unavailable',
    })
  const begin = performance.now()
  const tempoAccounts = options.tempo?.accounts ?? 10
  const solanaPayer = rails.includes('solana')
    ? await createKeypair(options.solana?.payerSecretKey)
    : undefined
  const plans = planContainers({
    rails,
    tempoAccounts,
    ...(solanaPayer ? { solanaMint: solanaPayer.keypair.address } : {}),
  })
  const started = await startContainers(plans)
  try {
    const info: DevnetInfo = {}
    const { containers } = started
    const tasks: Promise<void>[] = []
    if (containers.tempo) {
      const tempo = containers.tempo
      tasks.push(
        completeTempoNode({
          rpcUrl: `http://${tempo.host}:${tempo.port('rpc')}`,
          banner: tempo.output(),
          accounts: tempoAccounts,
        }).then((node) => {
          info.tempo = { source: 'containers', ...node }
        }),
      )
    }
    if (containers.solana && solanaPayer)
      info.solana = { source: 'containers', ...solanaContainerInfo(containers.solana, solanaPayer.keypair) }
    if (containers.bitcoind)
      tasks.push(
        connectLndContainers(containers).then((nodes) => {
          info.lightning = { source: 'containers', nodes }
        }),
      )
    if (containers.stripe) {
      const { host } = containers.stripe
      const port = containers.stripe.port('http')
      // stripe-mock accepts any well-formed test key.
      info.stripe = {
        source: 'containers',
        host,
        port,
        protocol: 'http',
        apiBase: `http://${host}:${port}`,
        secretKey: 'sk_test_mppkit_stripe_mock',
      }
    }
    await Promise.all(tasks)
    const elapsed = performance.now() - begin
    const timings: DevnetTimings['rails'] = {}
    for (const rail of rails) timings[rail] = elapsed
    return { info, timings, stop: started.stop }
  } catch (error) {
    await started.stop()
    throw error
  }
}

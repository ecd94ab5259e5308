import type { DevnetRail } from '../external.js'

/**
 * The pinned images of the containers provider. Each can be replaced through `planContainers`'
 * `images` option (for instance with a mirror).
 *
 * - `tempo`: Foundry's image, running the same `anvil --network tempo` as the embedded provider.
 * - `bitcoind` + `lnd`: Bitcoin Core in regtest and two Lightning Labs LND nodes on it.
 * - `solana`: the Solana Labs image running `solana-test-validator` (a real validator, single node).
 * - `stripe`: `stripe-mock`, Stripe's official mock (OpenAPI-driven; it knows no Shared Payment Tokens).
 *
 * @example
 * ```ts
 * console.log(containerImages.lnd) // 'lightninglabs/lnd:v0.18.3-beta'
 * ```
 */
export const containerImages = {
  tempo: 'ghcr.io/foundry-rs/foundry:v1.7.1',
  bitcoind: 'polarlightning/bitcoind:27.0',
  lnd: 'lightninglabs/lnd:v0.18.3-beta',
  solana: 'solanalabs/solana:v1.18.26',
  stripe: 'stripe/stripe-mock:v0.188.0',
} as const

/**
 * A port a container exposes, named so the runner can map it back to the node's info.
 *
 * @example
 * ```ts
 * const rpc: ContainerPort = { name: 'rpc', container: 8545 }
 * ```
 */
export type ContainerPort = { name: string; container: number }

/**
 * How the runner decides a container is ready, as data (translated to a testcontainers `Wait`).
 *
 * @example
 * ```ts
 * const wait: ContainerWait = { kind: 'http', path: '/health', port: 8899, status: 200 }
 * ```
 */
export type ContainerWait =
  | { kind: 'log'; pattern: string; times: number }
  | { kind: 'http'; path: string; port: number; status: number }
  | { kind: 'ports' }

/**
 * The full configuration of one container, as plain data: the runner only translates it into
 * testcontainers calls, so it is unit-tested without a Docker engine.
 *
 * @example
 * ```ts
 * const [bitcoind] = planContainers({ rails: ['lightning'] })
 * bitcoind?.command // ['-regtest=1', …]
 * ```
 */
export type ContainerPlan = {
  rail: DevnetRail
  /** Unique name within the plan, also its alias on the devnet's Docker network. */
  name: string
  image: string
  /** Replaces the image's entrypoint when set. */
  entrypoint?: string[]
  command: string[]
  environment: Record<string, string>
  ports: ContainerPort[]
  wait: ContainerWait
  startupTimeoutMs: number
  /** Names of containers that must be started first (bitcoind before LND). */
  dependsOn: string[]
}

/** Fixed regtest RPC credentials: bitcoind is reachable only on the devnet's private network. */
const bitcoindRpc = { user: 'mppkit', password: 'mppkit-regtest' }

/**
 * Builds the container configuration `startDevnet` runs when `MPPKIT_DEVNET=containers`: anvil
 * (Tempo), bitcoind regtest with two LND nodes (payer, payee), `solana-test-validator` with the
 * given payer as mint (genesis-funded) account, and `stripe-mock`.
 *
 * @example
 * ```ts
 * const plan = planContainers({ rails: ['solana'], solanaMint: payer.address })
 * plan[0]?.image // 'solanalabs/solana:v1.18.26'
 * ```
 */
export function planContainers(parameters: {
  rails: readonly DevnetRail[]
  /** Base58 address that `solana-test-validator --mint` funds at genesis (the devnet's payer). */
  solanaMint?: string
  /** Funded dev accounts for Tempo (one more is created as faucet/deployer). Default 10. */
  tempoAccounts?: number
  images?: Partial<Record<keyof typeof containerImages, string>>
}): ContainerPlan[] {
  const images = { ...containerImages, ...parameters.images }
  const plans: ContainerPlan[] = []
  for (const rail of parameters.rails) {
    if (rail === 'tempo') {
      plans.push({
        rail,
        name: 'tempo',
        image: images.tempo,
        entrypoint: ['anvil'],
        command: [
          '--network',
          'tempo',
          '--host',
          '0.0.0.0',
          '--port',
          '8545',
          '--accounts',
          String((parameters.tempoAccounts ?? 10) + 1),
        ],
        environment: {},
        ports: [{ name: 'rpc', container: 8545 }],
        wait: { kind: 'log', pattern: 'Listening on', times: 1 },
        startupTimeoutMs: 60_000,
        dependsOn: [],
      })
    } else if (rail === 'lightning') {
      plans.push({
        rail,
        name: 'bitcoind',
        image: images.bitcoind,
        command: [
          'bitcoind',
          '-regtest=1',
          '-server=1',
          '-txindex=1',
          '-dnsseed=0',
          '-listenonion=0',
          '-fallbackfee=0.0002',
          `-rpcuser=${bitcoindRpc.user}`,
          `-rpcpassword=${bitcoindRpc.password}`,
          '-rpcbind=0.0.0.0',
          '-rpcallowip=0.0.0.0/0',
          '-rpcport=18443',
          '-zmqpubrawblock=tcp://0.0.0.0:28334',
          '-zmqpubrawtx=tcp://0.0.0.0:28335',
        ],
        environment: {},
        ports: [{ name: 'rpc', container: 18443 }],
        wait: { kind: 'log', pattern: 'Done loading', times: 1 },
        startupTimeoutMs: 120_000,
        dependsOn: [],
      })
      for (const alias of ['payer', 'payee']) {
        plans.push({
          rail,
          name: `lnd-${alias}`,
          image: images.lnd,
          command: [
            // An unencrypted wallet is created and unlocked at start: no seed ceremony in tests.
            '--noseedbackup',
            `--alias=${alias}`,
            '--bitcoin.active',
            '--bitcoin.regtest',
            '--bitcoin.node=bitcoind',
            '--bitcoind.rpchost=bitcoind:18443',
            `--bitcoind.rpcuser=${bitcoindRpc.user}`,
            `--bitcoind.rpcpass=${bitcoindRpc.password}`,
            '--bitcoind.zmqpubrawblock=tcp://bitcoind:28334',
            '--bitcoind.zmqpubrawtx=tcp://bitcoind:28335',
            '--rpclisten=0.0.0.0:10009',
            '--listen=0.0.0.0:9735',
            // The host reaches the mapped gRPC port as localhost/127.0.0.1: the TLS cert must name them.
            '--tlsextradomain=localhost',
            '--tlsextraip=127.0.0.1',
            `--tlsextradomain=lnd-${alias}`,
            '--bitcoin.defaultchanconfs=1',
            '--trickledelay=50',
          ],
          environment: {},
          ports: [{ name: 'grpc', container: 10009 }],
          wait: { kind: 'log', pattern: 'RPC server listening on', times: 1 },
          startupTimeoutMs: 120_000,
          dependsOn: ['bitcoind'],
        })
      }
    } else if (rail === 'solana') {
      plans.push({
        rail,
        name: 'solana',
        image: images.solana,
        entrypoint: ['solana-test-validator'],
        command: [
          '--reset',
          '--quiet',
          '--ledger',
          '/tmp/test-ledger',
          '--bind-address',
          '0.0.0.0',
          '--rpc-port',
          '8899',
          ...(parameters.solanaMint ? ['--mint', parameters.solanaMint] : []),
        ],
        environment: {},
        ports: [
          { name: 'rpc', container: 8899 },
          { name: 'ws', container: 8900 },
        ],
        // The validator answers `GET /health` with `ok` once it is caught up.
        wait: { kind: 'http', path: '/health', port: 8899, status: 200 },
        startupTimeoutMs: 120_000,
        dependsOn: [],
      })
    } else {
      plans.push({
        rail,
        name: 'stripe',
        image: images.stripe,
        command: ['-http-port', '12111', '-https-port', '12112'],
        environment: {},
        ports: [{ name: 'http', container: 12111 }],
        wait: { kind: 'ports' },
        startupTimeoutMs: 60_000,
        dependsOn: [],
      })
    }
  }
  return plans
}

/** The bitcoind RPC credentials of the planned regtest node (the runner mines with them). */
export const plannedBitcoindRpc = bitcoindRpc

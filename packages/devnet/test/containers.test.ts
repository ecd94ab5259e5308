import { type ChildProcess, spawn } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { containerImages, planContainers } from '../src/containers/plan.js'
import { completeTempoNode } from '../src/containers/rails.js'
import { hasContainerRuntime, startContainers, type Testcontainers } from '../src/containers/start.js'
import { startDevnet, tempoRpc } from '../src/index.js'
import { resolveAnvilBinary } from '../src/tempo/anvil.js'

describe('planContainers', () => {
  it('plans anvil --network tempo with one extra (deployer) account', () => {
    const [tempo] = planContainers({ rails: ['tempo'], tempoAccounts: 3 })
    expect(tempo).toEqual({
      rail: 'tempo',
      name: 'tempo',
      image: containerImages.tempo,
      entrypoint: ['anvil'],
      command: ['--network', 'tempo', '--host', '0.0.0.0', '--port', '8545', '--accounts', '4'],
      environment: {},
      ports: [{ name: 'rpc', container: 8545 }],
      wait: { kind: 'log', pattern: 'Listening on', times: 1 },
      startupTimeoutMs: 60_000,
      dependsOn: [],
    })
  })

  it('plans bitcoind regtest and two LND nodes wired to it', () => {
    const plans = planContainers({ rails: ['lightning'] })
    expect(plans.map((plan) => [plan.name, plan.image, plan.dependsOn])).toEqual([
      ['bitcoind', 'polarlightning/bitcoind:27.0', []],
      ['lnd-payer', 'lightninglabs/lnd:v0.18.3-beta', ['bitcoind']],
      ['lnd-payee', 'lightninglabs/lnd:v0.18.3-beta', ['bitcoind']],
    ])
    const [bitcoind, payer, payee] = plans
    expect(bitcoind?.command).toEqual(
      expect.arrayContaining([
        '-regtest=1',
        '-zmqpubrawblock=tcp://0.0.0.0:28334',
        '-zmqpubrawtx=tcp://0.0.0.0:28335',
      ]),
    )
    expect(bitcoind?.wait).toEqual({ kind: 'log', pattern: 'Done loading', times: 1 })
    for (const [plan, alias] of [
      [payer, 'payer'],
      [payee, 'payee'],
    ] as const) {
      expect(plan?.command).toEqual(
        expect.arrayContaining([
          '--noseedbackup',
          `--alias=${alias}`,
          '--bitcoin.regtest',
          '--bitcoin.node=bitcoind',
          // LND reaches bitcoind by its network alias, on the ports bitcoind publishes ZMQ on.
          '--bitcoind.rpchost=bitcoind:18443',
          '--bitcoind.zmqpubrawblock=tcp://bitcoind:28334',
          '--bitcoind.zmqpubrawtx=tcp://bitcoind:28335',
          '--rpclisten=0.0.0.0:10009',
          '--tlsextradomain=localhost',
        ]),
      )
      // The same RPC credentials on both sides.
      const user = bitcoind?.command.find((flag) => flag.startsWith('-rpcuser='))?.split('=')[1]
      const password = bitcoind?.command.find((flag) => flag.startsWith('-rpcpassword='))?.split('=')[1]
      expect(plan?.command).toContain(`--bitcoind.rpcuser=${user}`)
      expect(plan?.command).toContain(`--bitcoind.rpcpass=${password}`)
      expect(plan?.ports).toEqual([{ name: 'grpc', container: 10009 }])
      expect(plan?.wait).toEqual({ kind: 'log', pattern: 'RPC server listening on', times: 1 })
    }
  })

  it('plans solana-test-validator with the payer as genesis mint and an HTTP health wait', () => {
    const [solana] = planContainers({
      rails: ['solana'],
      solanaMint: 'So1anaPayer1111111111111111111111111111111',
    })
    expect(solana?.image).toBe('solanalabs/solana:v1.18.26')
    expect(solana?.entrypoint).toEqual(['solana-test-validator'])
    expect(solana?.command).toEqual(
      expect.arrayContaining([
        '--bind-address',
        '0.0.0.0',
        '--rpc-port',
        '8899',
        '--mint',
        'So1anaPayer1111111111111111111111111111111',
      ]),
    )
    expect(solana?.ports).toEqual([
      { name: 'rpc', container: 8899 },
      { name: 'ws', container: 8900 },
    ])
    expect(solana?.wait).toEqual({ kind: 'http', path: '/health', port: 8899, status: 200 })
  })

  it('plans stripe-mock and accepts image overrides', () => {
    const [stripe] = planContainers({ rails: ['stripe'], images: { stripe: 'mirror.local/stripe-mock:1' } })
    expect(stripe).toMatchObject({
      image: 'mirror.local/stripe-mock:1',
      command: ['-http-port', '12111', '-https-port', '12112'],
      ports: [{ name: 'http', container: 12111 }],
      wait: { kind: 'ports' },
    })
  })
})

// A recording stand-in for the testcontainers module: checks the runner's translation of a plan
// into builder calls, its start order and its cleanup, without a Docker engine.
function fakeTestcontainers(options: { failOn?: string } = {}) {
  const calls: string[] = []
  const stopped: string[] = []
  let networkStopped = false
  const module: Testcontainers = {
    Network: class {
      async start() {
        calls.push('network')
        return {
          stop: async () => {
            networkStopped = true
          },
        }
      }
    } as unknown as Testcontainers['Network'],
    Wait: {
      forLogMessage: (message, times) => ({ log: String(message), times }),
      forListeningPorts: () => ({ ports: true }),
      forHttp: (path, port) => ({ forStatusCode: (status: number) => ({ http: path, port, status }) }),
    },
    getContainerRuntimeClient: async () => ({}),
    GenericContainer: class {
      config: Record<string, unknown> = {}
      alias = ''
      constructor(readonly image: string) {}
      withEntrypoint(value: string[]) {
        this.config.entrypoint = value
        return this
      }
      withCommand(value: string[]) {
        this.config.command = value
        return this
      }
      withEnvironment(value: Record<string, string>) {
        this.config.environment = value
        return this
      }
      withExposedPorts(...ports: number[]) {
        this.config.ports = ports
        return this
      }
      withNetwork() {
        this.config.network = true
        return this
      }
      withNetworkAliases(...aliases: string[]) {
        this.alias = aliases[0] ?? ''
        return this
      }
      withWaitStrategy(strategy: unknown) {
        this.config.wait = strategy
        return this
      }
      withStartupTimeout(ms: number) {
        this.config.timeout = ms
        return this
      }
      withLogConsumer() {
        return this
      }
      async start() {
        calls.push(`start ${this.alias} ${JSON.stringify(this.config)}`)
        if (this.alias === options.failOn) throw new Error(`${this.alias} failed`)
        const alias = this.alias
        return {
          getHost: () => 'localhost',
          getMappedPort: (port: number) => 40_000 + port,
          exec: async () => ({ output: '', exitCode: 0 }),
          stop: async () => {
            stopped.push(alias)
          },
        }
      }
    } as unknown as Testcontainers['GenericContainer'],
  }
  return { module, calls, stopped, networkStopped: () => networkStopped }
}

describe('startContainers', () => {
  it('translates each plan into testcontainers calls, dependencies first', async () => {
    const fake = fakeTestcontainers()
    const started = await startContainers(planContainers({ rails: ['lightning', 'stripe'] }), {
      testcontainers: fake.module,
    })
    expect(fake.calls[0]).toBe('network')
    const order = fake.calls.slice(1).map((call) => call.split(' ')[1])
    // bitcoind and stripe-mock start in the first wave, both LND nodes after bitcoind is up.
    expect(order.slice(0, 2).sort()).toEqual(['bitcoind', 'stripe'])
    expect(order.slice(2).sort()).toEqual(['lnd-payee', 'lnd-payer'])
    const payer = fake.calls.find((call) => call.startsWith('start lnd-payer '))!
    const config = JSON.parse(payer.slice('start lnd-payer '.length))
    expect(config).toMatchObject({
      ports: [10009],
      network: true,
      wait: { log: 'RPC server listening on', times: 1 },
      timeout: 120_000,
    })
    expect(config.entrypoint).toBeUndefined()
    expect(started.containers['lnd-payer']?.port('grpc')).toBe(50_009)
    expect(() => started.containers['lnd-payer']?.port('http')).toThrow(/no port named http/)
    const stripe = JSON.parse(fake.calls.find((call) => call.startsWith('start stripe '))!.slice(13))
    expect(stripe.wait).toEqual({ ports: true })
    await started.stop()
    expect(fake.stopped.sort()).toEqual(['bitcoind', 'lnd-payee', 'lnd-payer', 'stripe'])
    expect(fake.networkStopped()).toBe(true)
  })

  it('stops what started when a container fails', async () => {
    const fake = fakeTestcontainers({ failOn: 'lnd-payee' })
    await expect(
      startContainers(planContainers({ rails: ['lightning'] }), { testcontainers: fake.module }),
    ).rejects.toThrow(/lnd-payee failed/)
    expect(fake.stopped.sort()).toEqual(['bitcoind', 'lnd-payer'])
    expect(fake.networkStopped()).toBe(true)
  })
})

describe('completeTempoNode', () => {
  // What the containers provider does after the anvil container is up (it sees only the container's
  // output and a mapped port), run here against a bare anvil whose raw output we capture the same way.
  let anvil: ChildProcess
  let banner = ''
  let rpcUrl = ''
  beforeAll(async () => {
    anvil = spawn(resolveAnvilBinary(), ['--network', 'tempo', '--accounts', '3', '--port', '0'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    })
    rpcUrl = await new Promise<string>((resolve, reject) => {
      anvil.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        banner += chunk
        const match = /Listening on [^\s]*:(\d+)/.exec(banner)
        if (match) resolve(`http://127.0.0.1:${match[1]}`)
      })
      anvil.once('exit', () => reject(new Error('anvil exited')))
    })
    anvil.stdout!.resume()
  })
  afterAll(() => {
    if (anvil?.pid && anvil.exitCode === null) process.kill(anvil.pid, 'SIGKILL')
  })

  it('deploys the escrow and EIP-3009 token and reports the embedded shape', async () => {
    const info = await completeTempoNode({ rpcUrl, banner, accounts: 2 })
    expect(info.accounts).toHaveLength(2)
    expect(info.accounts[0]?.address).toBe('0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266')
    expect(banner).toContain(info.faucet)
    expect(info.chainId).toBe(31337)
    for (const contract of [info.escrow, info.eip3009Token]) {
      const code = await tempoRpc<string>(rpcUrl, 'eth_getCode', [contract, 'latest'])
      expect(code.length).toBeGreaterThan(100)
    }
    await expect(completeTempoNode({ rpcUrl, banner, accounts: 5 })).rejects.toThrow(
      /printed 3 accounts, expected 6/,
    )
  })
})

describe('containers provider (live)', () => {
  let reason = ''
  beforeAll(async () => {
    const runtime = await hasContainerRuntime()
    reason = runtime.available ? '' : runtime.reason
    if (reason) console.warn(`[skip] containers provider live run: ${reason}`)
  })

  it('refuses MPPKIT_DEVNET=containers without an engine, never falling back silently', async (context) => {
    if (!reason) context.skip()
    await expect(startDevnet({ rails: ['stripe'], env: { MPPKIT_DEVNET: 'containers' } })).rejects.toThrow(
      /MPPKIT_DEVNET=containers but no Docker engine/,
    )
  })

  it('starts stripe-mock and Tempo as real containers', async (context) => {
    if (reason) context.skip()
    const devnet = await startDevnet({ rails: ['tempo', 'stripe'], env: { MPPKIT_DEVNET: 'containers' } })
    try {
      expect(devnet.providers).toEqual({ tempo: 'containers', stripe: 'containers' })
      expect(await tempoRpc(devnet.info.tempo!.rpcUrl, 'eth_chainId', [])).toMatch(/^0x/)
      const response = await fetch(`${devnet.info.stripe!.apiBase}/v1/customers`, {
        headers: { authorization: `Bearer ${devnet.info.stripe!.secretKey}` },
      })
      expect(response.status).toBe(200)
    } finally {
      await devnet.stop()
    }
  }, 300_000)
})

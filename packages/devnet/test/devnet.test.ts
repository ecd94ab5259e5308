import { execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSolanaRpc } from '@solana/kit'
import { authenticatedLndGrpc, createInvoice, getWalletInfo, pay } from 'lightning'
import Stripe from 'stripe'
import { createPublicClient, http } from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createTestSpt,
  type DevnetInfo,
  devnetGlobalSetup,
  devnetInfoEnvironmentVariable,
  devnetProvideKey,
  planDevnet,
  type RunningDevnet,
  readDevnetInfo,
  readExternalNodes,
  startDevnet,
  startLightning,
  startSolana,
  startStripe,
  startTempo,
} from '../src/index.js'

const isRunning = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

function childAnvils(): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(process.pid), 'anvil'], { encoding: 'utf8' })
      .split('\n')
      .filter((line) => line !== '')
      .map(Number)
  } catch {
    return [] // pgrep exits 1 when nothing matches
  }
}

async function waitForExit(pid: number, ms = 3_000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (isRunning(pid)) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return true
}

// One RPC per node through each rail's own client library; returns what each node answered.
async function touchEveryNode(info: DevnetInfo) {
  const tempo = createPublicClient({ transport: http(info.tempo!.rpcUrl, { timeout: 5_000 }) })
  const solana = createSolanaRpc(info.solana!.rpcUrl)
  const stripeInfo = info.stripe!
  const stripe = new Stripe(stripeInfo.secretKey, {
    host: stripeInfo.host,
    port: stripeInfo.port,
    protocol: stripeInfo.protocol,
    maxNetworkRetries: 0,
  })
  const { lnd } = authenticatedLndGrpc(info.lightning!.nodes.payee)
  const [chainId, health, intent, wallet] = await Promise.all([
    tempo.getChainId(),
    solana.getHealth().send(),
    stripe.paymentIntents.create({
      amount: 100,
      currency: 'usd',
      ...({ payment_method_types: ['card'] } as object),
    }),
    getWalletInfo({ lnd }),
  ])
  return { chainId, health, intent, wallet }
}

describe('startDevnet', () => {
  let devnet: RunningDevnet
  beforeAll(async () => {
    devnet = await startDevnet({ env: {} })
  })
  afterAll(() => devnet?.stop())

  // The 3 s start-up bound is timed in startup-time.test.ts, alone after the rest of the suite.
  it('starts the four rails and reports them in a stable order', () => {
    expect(Object.keys(devnet.info)).toEqual(['tempo', 'solana', 'lightning', 'stripe'])
    expect(devnet.providers).toEqual({
      tempo: 'embedded',
      solana: 'embedded',
      lightning: 'embedded',
      stripe: 'embedded',
    })
    expect(devnet.pids).toHaveLength(1)
    expect(isRunning(devnet.pids[0]!)).toBe(true)
    // Plain JSON: survives a round trip unchanged (what the CLI prints and global setup provides).
    expect(JSON.parse(JSON.stringify(devnet.info))).toEqual(devnet.info)
  })

  it('answers one RPC on each node through the rails’ own clients', async () => {
    const { chainId, health, intent, wallet } = await touchEveryNode(devnet.info)
    expect(chainId).toBe(devnet.info.tempo?.chainId)
    expect(intent.amount).toBe(100)
    expect(health).toBe('ok')
    expect(wallet.public_key).toBe(
      devnet.info.lightning?.source === 'embedded' ? devnet.info.lightning.nodes.payee.publicKey : '',
    )
  })

  it('gives funded accounts that can pay on Lightning and Stripe', async () => {
    const info = devnet.info
    const payee = authenticatedLndGrpc(info.lightning!.nodes.payee).lnd
    const payer = authenticatedLndGrpc(info.lightning!.nodes.payer!).lnd
    const invoice = await createInvoice({ lnd: payee, tokens: 21 })
    const paid = await pay({ lnd: payer, request: invoice.request })
    expect(paid.secret).toHaveLength(64)
    if (info.stripe?.source !== 'embedded') throw new Error('expected the simulator')
    const spt = await createTestSpt(info.stripe, { maxAmount: 100 })
    expect(spt.id).toMatch(/^spt_/)
  })

  it('stop() ends every node, kills anvil, and is idempotent', async () => {
    const other = await startDevnet({ env: {}, rails: ['tempo', 'stripe'] })
    expect(Object.keys(other.info)).toEqual(['tempo', 'stripe'])
    const [pid] = other.pids
    await Promise.all([other.stop(), other.stop()])
    await other.stop()
    expect(await waitForExit(pid!)).toBe(true)
    await expect(fetch(other.info.stripe!.apiBase)).rejects.toThrow()
  })

  it('stops the rails already up when another fails', async () => {
    // The Stripe simulator rejects a live key after anvil has been spawned by the Tempo rail.
    await expect(
      startDevnet({ env: {}, rails: ['tempo', 'stripe'], stripe: { secretKey: 'sk_live_nope' } }),
    ).rejects.toThrow(/sk_test_/)
    // anvil is exec'd by a shell this process spawned: it would be our direct child.
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(childAnvils().filter((pid) => !devnet.pids.includes(pid))).toEqual([])
  })

  it('rejects an unknown rail', async () => {
    await expect(startDevnet({ env: {}, rails: ['bitcoin' as never] })).rejects.toThrow(/unknown rail/)
  })
})

describe('planDevnet', () => {
  it('defaults every rail to the embedded node', () => {
    expect(planDevnet({ rails: ['tempo', 'solana', 'lightning', 'stripe'], env: {} })).toEqual({
      tempo: 'embedded',
      solana: 'embedded',
      lightning: 'embedded',
      stripe: 'embedded',
      external: {},
    })
  })

  it('uses containers only when MPPKIT_DEVNET=containers, and external nodes win per rail', () => {
    const plan = planDevnet({
      rails: ['tempo', 'solana', 'stripe'],
      env: { MPPKIT_DEVNET: 'containers', STRIPE_SECRET_KEY: 'sk_test_abc' },
    })
    expect(plan).toEqual({
      tempo: 'containers',
      solana: 'containers',
      stripe: 'external',
      external: { stripe: { secretKey: 'sk_test_abc', apiBase: 'https://api.stripe.com' } },
    })
  })

  it('ignores the override of a rail that was not selected', () => {
    const plan = planDevnet({ rails: ['tempo'], env: { STRIPE_SECRET_KEY: 'sk_test_abc' } })
    expect(plan).toEqual({ tempo: 'embedded', external: {} })
  })

  it('rejects an unknown MPPKIT_DEVNET', () => {
    expect(() => planDevnet({ rails: ['tempo'], env: { MPPKIT_DEVNET: 'docker' } })).toThrow(/MPPKIT_DEVNET/)
  })
})

describe('readExternalNodes', () => {
  it('reads nothing from an empty environment', () => {
    expect(readExternalNodes({})).toEqual({})
  })

  it('refuses a live Stripe key and does not echo it', () => {
    const run = () => readExternalNodes({ STRIPE_SECRET_KEY: 'sk_live_secretvalue' })
    expect(run).toThrow(/test-mode key/)
    try {
      run()
    } catch (error) {
      expect(String((error as Error).message)).not.toContain('secretvalue')
    }
  })

  it('derives the Solana PubSub URL on RPC port + 1 unless given', () => {
    expect(readExternalNodes({ MPPKIT_SOLANA_RPC_URL: 'http://127.0.0.1:8899' }).solana).toEqual({
      rpcUrl: 'http://127.0.0.1:8899/',
      wsUrl: 'ws://127.0.0.1:8900/',
    })
    expect(
      readExternalNodes({
        MPPKIT_SOLANA_RPC_URL: 'https://rpc.example',
        MPPKIT_SOLANA_WS_URL: 'wss://ws.example',
      }).solana,
    ).toEqual({ rpcUrl: 'https://rpc.example/', wsUrl: 'wss://ws.example/' })
    expect(() => readExternalNodes({ MPPKIT_SOLANA_RPC_URL: 'ftp://x' })).toThrow(/http/)
  })

  it('needs the three LND variables together and reads cert and macaroon files', () => {
    expect(() => readExternalNodes({ MPPKIT_LND_SOCKET: '127.0.0.1:10009' })).toThrow(
      /MPPKIT_LND_CERT, MPPKIT_LND_MACAROON must be set/,
    )
    const directory = mkdtempSync(join(tmpdir(), 'mppkit-lnd-'))
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'
    writeFileSync(join(directory, 'tls.cert'), pem)
    writeFileSync(join(directory, 'admin.macaroon'), Buffer.from([0x02, 0x01, 0xff]))
    expect(
      readExternalNodes({
        MPPKIT_LND_SOCKET: 'localhost:10009',
        MPPKIT_LND_CERT: join(directory, 'tls.cert'),
        MPPKIT_LND_MACAROON: join(directory, 'admin.macaroon'),
      }).lightning,
    ).toEqual({
      payee: { socket: 'localhost:10009', cert: Buffer.from(pem).toString('base64'), macaroon: '0201ff' },
    })
    expect(() =>
      readExternalNodes({ MPPKIT_LND_SOCKET: 'nohost', MPPKIT_LND_CERT: 'AAAA', MPPKIT_LND_MACAROON: '00' }),
    ).toThrow(/host:port/)
  })

  it('validates Tempo private keys', () => {
    expect(() =>
      readExternalNodes({ MPPKIT_TEMPO_RPC_URL: 'http://127.0.0.1:8545', MPPKIT_TEMPO_PRIVATE_KEYS: '0x12' }),
    ).toThrow(/MPPKIT_TEMPO_PRIVATE_KEYS/)
  })
})

describe('startDevnet with real-node environment variables', () => {
  // The "real nodes" here are separately started devnet nodes: what matters is that startDevnet
  // reports them instead of starting its own, and that the reported endpoints work.
  let tempo: Awaited<ReturnType<typeof startTempo>>
  let solana: Awaited<ReturnType<typeof startSolana>>
  let lightning: Awaited<ReturnType<typeof startLightning>>
  let stripe: Awaited<ReturnType<typeof startStripe>>
  beforeAll(async () => {
    ;[tempo, solana, lightning, stripe] = await Promise.all([
      startTempo({ accounts: 2 }),
      startSolana(),
      startLightning(),
      startStripe(),
    ])
  })
  afterAll(async () => {
    await Promise.all([tempo?.stop(), solana?.stop(), lightning?.stop(), stripe?.stop()])
  })

  it('reports the external nodes and starts nothing', async () => {
    const payee = lightning.info.nodes.payee
    const env = {
      MPPKIT_TEMPO_RPC_URL: tempo.info.rpcUrl,
      MPPKIT_TEMPO_PRIVATE_KEYS: tempo.info.accounts.map((account) => account.privateKey).join(','),
      MPPKIT_SOLANA_RPC_URL: solana.info.rpcUrl,
      MPPKIT_SOLANA_WS_URL: solana.info.wsUrl,
      MPPKIT_LND_SOCKET: payee.socket,
      MPPKIT_LND_CERT: payee.cert,
      MPPKIT_LND_MACAROON: payee.macaroon,
      MPPKIT_LND_PAYER_SOCKET: lightning.info.nodes.payer.socket,
      MPPKIT_LND_PAYER_CERT: lightning.info.nodes.payer.cert,
      MPPKIT_LND_PAYER_MACAROON: lightning.info.nodes.payer.macaroon,
      STRIPE_SECRET_KEY: stripe.info.secretKey,
      MPPKIT_STRIPE_API_BASE: stripe.info.apiBase,
    }
    const devnet = await startDevnet({ env })
    try {
      expect(devnet.providers).toEqual({
        tempo: 'external',
        solana: 'external',
        lightning: 'external',
        stripe: 'external',
      })
      expect(devnet.pids).toEqual([])
      expect(devnet.info.tempo).toEqual({
        source: 'external',
        rpcUrl: new URL(tempo.info.rpcUrl).href,
        chainId: tempo.info.chainId,
        accounts: tempo.info.accounts,
      })
      expect(devnet.info.stripe).toMatchObject({
        source: 'external',
        host: stripe.info.host,
        port: stripe.info.port,
        protocol: 'http',
      })
      const { chainId, health, intent, wallet } = await touchEveryNode(devnet.info)
      expect(chainId).toBe(tempo.info.chainId)
      expect(health).toBe('ok')
      expect(wallet.public_key).toBe(payee.publicKey)
      expect(intent).toMatchObject({ object: 'payment_intent', status: 'requires_payment_method' })
    } finally {
      await devnet.stop()
    }
    // Stopping the devnet never stops an external node.
    expect(await createSolanaRpc(solana.info.rpcUrl).getHealth().send()).toBe('ok')
  })

  it('fails clearly when an external node does not answer', async () => {
    await expect(
      startDevnet({ rails: ['tempo'], env: { MPPKIT_TEMPO_RPC_URL: 'http://127.0.0.1:9/' } }),
    ).rejects.toThrow(/MPPKIT_TEMPO_RPC_URL did not answer/)
  })
})

describe('devnetGlobalSetup', () => {
  it('provides the info to tests and in MPPKIT_DEVNET_INFO, and its teardown stops the nodes', async () => {
    const provided = new Map<string, unknown>()
    const teardown = await devnetGlobalSetup(
      { provide: (key, value) => provided.set(key, value) },
      { rails: ['solana', 'stripe'], env: {} },
    )
    const info = provided.get(devnetProvideKey) as DevnetInfo
    expect(Object.keys(info)).toEqual(['solana', 'stripe'])
    expect(readDevnetInfo()).toEqual(info)
    expect(await createSolanaRpc(info.solana!.rpcUrl).getHealth().send()).toBe('ok')
    await teardown()
    expect(process.env[devnetInfoEnvironmentVariable]).toBeUndefined()
    await expect(fetch(info.solana!.rpcUrl, { method: 'POST' })).rejects.toThrow()
  })
})

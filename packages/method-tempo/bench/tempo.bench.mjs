// Tempo benchmarks against the reference SDK (mppx@0.11.0), measured in the same run on the same machine:
// (a) session voucher verification ops/s, (b) charge end-to-end p50 latency on a local anvil node
// (client signs a pull transaction → server verifies, broadcasts, waits for the receipt → 200).
import { availableParallelism, loadavg } from 'node:os'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { fundTip20, startTempo, tempoClients } from '@mppkit/devnet'
import { Mppx as MppxClient, tempo as mppxClientTempo } from 'mppx/client'
import { Mppx as MppxServer, tempo as mppxServerTempo } from 'mppx/server'
import { SessionLegacy } from 'mppx/tempo'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { compare, latency } from '../../../scripts/measure.mjs'
import { chargeClient } from '../dist/client/index.js'
import { Voucher } from '../dist/index.js'
import { chargeServer } from '../dist/server/index.js'

export async function vouchers() {
  const account = privateKeyToAccount(generatePrivateKey())
  const escrow = '0x1234567890abcdef1234567890abcdef12345678'
  const channelId = `0x${'6d'.repeat(32)}`
  const chainId = 4217
  const pool = []
  for (let i = 1; i <= 400; i++) {
    const cumulativeAmount = BigInt(i) * 1000n
    pool.push({
      channelId,
      cumulativeAmount,
      signature: await Voucher.sign(account, { chainId, escrow, channelId, cumulativeAmount }),
    })
  }
  const check = (verifier) => async (voucher) => {
    if (verifier.verify({ chainId, escrow, voucher, signer: account.address }))
      throw new Error(`mppkit (${verifier.backend}) rejected a valid voucher`)
  }
  const sides = {}
  // The default engine (libsecp256k1 when its binding loads), then the pure-JS fallback, then mppx.
  const native = Voucher.verifierBackend() === 'libsecp256k1'
  if (native) sides.native = check(Voucher.createVerifier())
  sides.noble = check(Voucher.createVerifier({ backend: 'noble' }))
  sides.mppx = async (voucher) => {
    if (!(await SessionLegacy.Session.Voucher.verifyVoucher(escrow, chainId, voucher, account.address)))
      throw new Error('mppx rejected a valid voucher')
  }
  const prepare = Object.fromEntries(Object.keys(sides).map((name) => [name, () => pool]))
  return compare(sides, { iterations: 400, rounds: 5, prepare })
}

async function chargeLatency() {
  const devnet = await startTempo({ accounts: 2 })
  try {
    const { info } = devnet
    const recipient = info.accounts[0].address
    const { publicClient } = tempoClients({ ...info, timeout: 8_000 })
    const iterations = 15
    // mppx pays from the expiring nonce lane, which anvil serves once per account: every payment (on
    // both sides, for fairness) comes from a fresh funded account prepared outside the timed region.
    const payers = []
    for (let i = 0; i < iterations * 2; i++) {
      const privateKey = generatePrivateKey()
      await fundTip20({
        rpcUrl: info.rpcUrl,
        from: info.faucet,
        token: info.tokens.pathUsd,
        to: privateKeyToAccount(privateKey).address,
        amount: 10_000_000n,
      })
      payers.push(privateKey)
    }
    const secret = 'tempo-bench-secret-0123456789abcdefghijk'
    const ours = createServer({
      realm: 'bench.test',
      secrets: [secret],
      methods: [
        chargeServer({
          rpcUrl: info.rpcUrl,
          chainId: info.chainId,
          currency: info.tokens.pathUsd,
          recipient,
        }),
      ],
    }).protect({ offers: [{ method: 'tempo', request: { amount: '1000' } }] }, () => new Response('ok'))
    const ourFetch = (input, init) => ours(new Request(input, init))
    const mppxServer = MppxServer.create({
      realm: 'bench.test',
      secretKey: secret,
      methods: [
        mppxServerTempo.charge({ recipient, currency: info.tokens.pathUsd, getClient: () => publicClient }),
      ],
    })
    const route = mppxServer['tempo/charge']({ amount: '0.001' })
    const theirFetch = async (input, init) => {
      const result = await route(new Request(input, init))
      return result.status === 402 ? result.challenge : result.withReceipt(new Response('ok'))
    }
    const ourClients = payers.slice(0, iterations).map((key) =>
      createClient({
        methods: [
          chargeClient({ account: privateKeyToAccount(key), rpcUrl: info.rpcUrl, chainId: info.chainId }),
        ],
        fetch: ourFetch,
      }),
    )
    const theirClients = payers.slice(iterations).map((key) => {
      const wallet = tempoClients({ ...info, privateKey: key, timeout: 8_000 })
      return MppxClient.create({
        polyfill: false,
        fetch: theirFetch,
        methods: [
          mppxClientTempo.charge({
            account: wallet.account,
            mode: 'pull',
            getClient: () => wallet.walletClient,
          }),
        ],
      })
    })
    const check = (response) => {
      if (response.status !== 200) throw new Error(`expected 200, got ${response.status}`)
    }
    return await latency(
      {
        mppkit: async (i) => check(await ourClients[i].fetch('https://bench.test/paid')),
        mppx: async (i) => check(await theirClients[i].fetch('https://bench.test/paid')),
      },
      { iterations },
    )
  } finally {
    await devnet.stop()
  }
}

export async function run() {
  // The machine is shared: the load average next to the figures says how busy it was during the run.
  const loadBefore = loadavg()[0]
  const verify = await vouchers()
  const loadAfter = loadavg()[0]
  const charge = await chargeLatency()
  const fmt = (n) => Math.round(n).toLocaleString('en-US')
  return [
    ...(verify.native
      ? [
          {
            name: 'tempo voucher verification (libsecp256k1)',
            mppkit: verify.native,
            mppx: verify.mppx,
            target: 25,
          },
          {
            name: 'tempo vouchers/s on one core (libsecp256k1)',
            text: `${fmt(verify.native)} ${verify.native >= 10_000 ? '✓' : '✗'} target ≥ 10,000`,
          },
        ]
      : [
          {
            name: 'tempo voucher verification (libsecp256k1)',
            text: '[skip] the secp256k1 binding cannot load here',
          },
        ]),
    {
      name: 'tempo voucher verification: machine load',
      text: `load average ${loadBefore.toFixed(1)} → ${loadAfter.toFixed(1)} on ${availableParallelism()} cores (ops/s fall as load rises)`,
    },
    {
      name: 'tempo voucher verification (noble fallback)',
      mppkit: verify.noble,
      mppx: verify.mppx,
      target: 3,
    },
    {
      name: 'tempo charge e2e p50 (anvil, pull)',
      mppkit: charge.mppkit.p50,
      mppx: charge.mppx.p50,
      unit: 'ms',
      target: 1,
    },
  ]
}

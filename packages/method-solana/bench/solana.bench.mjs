// Solana charge benchmarks against the Solana Foundation's SDK (@solana/mpp@0.6.0 over mppx), measured
// in the same run on the same devnet SVM: (a) credential verification throughput of the server (a fresh
// 402 challenge, then the credential: pull = check, send and confirm a pre-signed transaction; push =
// fetch and check a landed one), (b) end-to-end p50 of a pull payment (client signs → server settles → 200).
// Fairness: both servers talk to the same node URL at `confirmed` commitment (theirs is fixed at it),
// keep consumed signatures in memory, take the same pre-signed transactions (built outside the timed
// region) and run in this one process with the node, so node work counts for both alike.
// (c) where the time goes: each side's RPC calls per verification (through a timing proxy, untimed
// otherwise) and the process CPU per verification (ours, theirs and the node's share together).

import { Agent, createServer as createHttpServer, request as httpRequest } from 'node:http'
import { Challenge, Credential } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import {
  createFundedAccount,
  createMint,
  findAssociatedTokenAddress,
  mintTo,
  startSolana,
} from '@mppkit/devnet'
import {
  address,
  appendTransactionMessageInstructions,
  createKeyPairSignerFromBytes,
  createSolanaRpc,
  createTransactionMessage,
  getBase64EncodedWireTransaction,
  pipe,
  setTransactionMessageFeePayerSigner,
  setTransactionMessageLifetimeUsingBlockhash,
  signTransactionMessageWithSigners,
} from '@solana/kit'
import { Mppx as MppxClient, solana as theirClientSolana } from '@solana/mpp/client'
import { Mppx as MppxServer, solana as theirServerSolana } from '@solana/mpp/server'
import { getSetComputeUnitPriceInstruction } from '@solana-program/compute-budget'
import { getTransferCheckedInstruction } from '@solana-program/token'
import { compare, latency } from '../../../scripts/measure.mjs'
import { chargeClient } from '../dist/client/index.js'
import { chargeServer } from '../dist/server/index.js'

const realm = 'bench.test'
const secret = 'solana-bench-secret-0123456789abcdefghij'
const url = 'https://bench.test/paid'
const signer = async (keypair) => createKeyPairSignerFromBytes(new Uint8Array(keypair.secretKey))

async function world(node) {
  const { mint } = await createMint(node, { decimals: 6 })
  const payer = await signer(await createFundedAccount(node))
  const recipient = await signer(await createFundedAccount(node))
  await mintTo(node, { mint, owner: payer.address, amount: 10n ** 15n })
  await mintTo(node, { mint, owner: recipient.address, amount: 0n })
  return { mint: String(mint), payer, recipient: recipient.address }
}

function servers(node, w, rpcUrl = node.info.rpcUrl) {
  const ours = createServer({
    realm,
    secrets: [secret],
    methods: [
      chargeServer({
        rpcUrl,
        network: 'localnet',
        currency: w.mint,
        decimals: 6,
        recipient: w.recipient,
        commitment: 'confirmed',
      }),
    ],
  }).protect({ offers: [{ method: 'solana', request: { amount: '1000' } }] }, () => new Response('ok'))
  const mppx = MppxServer.create({
    realm,
    secretKey: secret,
    methods: [
      theirServerSolana.charge({
        recipient: w.recipient,
        currency: w.mint,
        decimals: 6,
        network: 'localnet',
        rpcUrl,
      }),
    ],
  })
  const route = mppx['solana/charge']({ amount: '1000' })
  const theirs = async (request) => {
    const result = await route(request)
    return result.status === 402 ? result.challenge : result.withReceipt(new Response('ok'))
  }
  return {
    mppkit: (input, init) => ours(new Request(input, init)),
    mppx: (input, init) => theirs(new Request(input, init)),
  }
}

/** `count` signed transfers of 1000 base units, each unique (its own priority fee). */
async function transfers(node, w, count, offset) {
  const tokenProgram = node.ledger.account(w.mint).owner
  const source = await findAssociatedTokenAddress({ owner: w.payer.address, mint: w.mint, tokenProgram })
  const destination = await findAssociatedTokenAddress({ owner: w.recipient, mint: w.mint, tokenProgram })
  const latest = node.ledger.latestBlockhash()
  const out = []
  for (let i = 0; i < count; i++) {
    const message = pipe(
      createTransactionMessage({ version: 0 }),
      (m) => setTransactionMessageFeePayerSigner(w.payer, m),
      (m) => setTransactionMessageLifetimeUsingBlockhash(latest, m),
      (m) =>
        appendTransactionMessageInstructions(
          [
            getSetComputeUnitPriceInstruction({ microLamports: BigInt(offset + i + 1) }),
            getTransferCheckedInstruction({
              source,
              mint: address(w.mint),
              destination,
              authority: w.payer,
              amount: 1000n,
              decimals: 6,
            }),
          ],
          m,
        ),
    )
    out.push(getBase64EncodedWireTransaction(await signTransactionMessageWithSigners(message)))
  }
  return out
}

/** A JSON-RPC proxy that records, per call, the method and how long the node took to answer. */
async function timingProxy(target) {
  const upstream = new URL(target)
  const agent = new Agent({ keepAlive: true })
  const calls = []
  const server = createHttpServer((req, res) => {
    const chunks = []
    req.on('data', (chunk) => chunks.push(chunk))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      const start = process.hrtime.bigint()
      const forward = httpRequest(
        upstream,
        {
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', 'content-length': body.length },
        },
        (answer) => {
          const parts = []
          answer.on('data', (part) => parts.push(part))
          answer.on('end', () => {
            calls.push({
              method: JSON.parse(body).method,
              ms: Number(process.hrtime.bigint() - start) / 1e6,
            })
            res.writeHead(answer.statusCode, { 'content-type': 'application/json' })
            res.end(Buffer.concat(parts))
          })
        },
      )
      forward.end(body)
    })
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    calls,
    close: () => new Promise((resolve) => server.close(resolve)).finally(() => agent.destroy()),
  }
}

async function throughput(mode) {
  const node = await startSolana()
  try {
    const w = await world(node)
    const fetchers = servers(node, w)
    const rpc = createSolanaRpc(node.info.rpcUrl)
    let offset = 0
    const chunk = 100
    const prepare =
      (side, via = fetchers) =>
      async (count) => {
        const credentials = []
        // In chunks of at most 100 transactions, each chunk on the blockhash of its time: a push round
        // sends its transactions here (one slot each), and a blockhash expires after 150 of them.
        for (let done = 0; done < count; done += chunk) {
          const size = Math.min(chunk, count - done)
          offset += size
          for (const transaction of await transfers(node, w, size, offset)) {
            const challenge = Challenge.parseAll((await via[side](url)).headers.get('www-authenticate'))[0]
            let payload = { type: 'transaction', transaction }
            if (mode === 'push') {
              const signature = await rpc.sendTransaction(transaction, { encoding: 'base64' }).send()
              payload = { type: 'signature', signature }
            }
            credentials.push(Credential.format({ challenge, payload }))
          }
        }
        return credentials
      }
    // Process CPU per verification (user + system, all threads: the server and the node's share), read
    // around each timed round: a read costs a getrusage over every thread, too much for each call.
    const cpu = { mppkit: { ms: 0, n: 0 }, mppx: { ms: 0, n: 0 } }
    let cpuBefore
    const around = {
      start: () => {
        cpuBefore = process.cpuUsage()
      },
      end: (side, iterations) => {
        const used = process.cpuUsage(cpuBefore)
        cpu[side].ms += (used.user + used.system) / 1000
        cpu[side].n += iterations
      },
    }
    const submit =
      (side, via = fetchers) =>
      async (authorization) => {
        const response = await via[side](url, { headers: { authorization } })
        if (response.status !== 200)
          throw new Error(`${side}: expected 200, got ${response.status} ${await response.text()}`)
      }
    const ops = await compare(
      { mppkit: submit('mppkit'), mppx: submit('mppx') },
      // Seven rounds after 300 untimed calls each: a sub-millisecond verification's round is short, so one
      // collector pause or a side still warming its JIT would otherwise decide the median round. A pull
      // round stays at 100: the server sends its transactions during the round, on blockhashes taken
      // before it, which expire after 150 of the node's slots. A push round (its transactions landed
      // while it was prepared) is 300 calls, so that a ~0.5 ms verification's round is not a ~50 ms
      // window that one pause of the machine decides.
      {
        iterations: mode === 'push' ? 300 : 100,
        rounds: 7,
        warmup: 300,
        prepare: { mppkit: prepare('mppkit'), mppx: prepare('mppx') },
        around,
      },
    )
    const cpuPer = { mppkit: cpu.mppkit.ms / cpu.mppkit.n, mppx: cpu.mppx.ms / cpu.mppx.n }
    // Where the time goes: the same verifications through a timing proxy (not part of the ops/s).
    const proxy = await timingProxy(node.info.rpcUrl)
    const proxied = servers(node, w, proxy.url)
    const calls = {}
    const samples = 20
    const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]
    for (const side of ['mppkit', 'mppx']) {
      const credentials = await prepare(side, proxied)(samples)
      const perVerification = []
      const methods = []
      for (const credential of credentials) {
        proxy.calls.length = 0
        await submit(side, proxied)(credential)
        perVerification.push(proxy.calls.reduce((sum, call) => sum + call.ms, 0))
        methods.push(...proxy.calls.map((call) => call.method))
      }
      const counts = new Map()
      for (const method of methods) counts.set(method, (counts.get(method) ?? 0) + 1)
      calls[side] = {
        list: [...counts].map(([method, n]) => `${method}×${(n / samples).toFixed(1).replace(/\.0$/, '')}`),
        // Median over the verifications: one slow call on a shared machine does not make the figure.
        ms: median(perVerification),
        cpu: cpuPer[side],
        wall: 1000 / ops[side],
      }
    }
    await proxy.close()
    return { ...ops, calls }
  } finally {
    await node.stop()
  }
}

function breakdown(mode, result) {
  const side = (name) => {
    const c = result.calls[name]
    return `${name} ${c.wall.toFixed(2)} ms/verification (CPU ${c.cpu.toFixed(2)} ms), RPC ${c.list.join(' + ')} = ${c.ms.toFixed(2)} ms at the node (median)`
  }
  const cpuRatio = result.calls.mppx.cpu / result.calls.mppkit.cpu
  return {
    name: `solana ${mode}: where the time goes`,
    text: `${side('mppkit')}; ${side('mppx')}; CPU per verification ${cpuRatio.toFixed(2)}× less`,
  }
}

async function endToEnd() {
  const node = await startSolana()
  try {
    const w = await world(node)
    const fetchers = servers(node, w)
    const ours = createClient({
      methods: [chargeClient({ signer: w.payer, rpcUrl: node.info.rpcUrl, network: 'localnet' })],
      fetch: fetchers.mppkit,
    })
    const theirs = MppxClient.create({
      polyfill: false,
      fetch: fetchers.mppx,
      methods: [theirClientSolana.charge({ signer: w.payer, rpcUrl: node.info.rpcUrl })],
    })
    const check = (response) => {
      if (response.status !== 200) throw new Error(`expected 200, got ${response.status}`)
    }
    return await latency(
      { mppkit: async () => check(await ours.fetch(url)), mppx: async () => check(await theirs.fetch(url)) },
      { iterations: 20 },
    )
  } finally {
    await node.stop()
  }
}

export async function run() {
  const pull = await throughput('pull')
  const push = await throughput('push')
  const e2e = await endToEnd()
  return [
    { name: 'solana charge verification (pull)', mppkit: pull.mppkit, mppx: pull.mppx, target: 3 },
    breakdown('pull', pull),
    { name: 'solana charge verification (push)', mppkit: push.mppkit, mppx: push.mppx, target: 3 },
    breakdown('push', push),
    {
      name: 'solana charge e2e p50 (devnet SVM, pull)',
      mppkit: e2e.mppkit.p50,
      mppx: e2e.mppx.p50,
      unit: 'ms',
      target: 1,
    },
  ]
}

// Solana charge benchmarks against the Solana Foundation's SDK (@solana/mpp@0.6.0 over mppx), measured
// in the same run on the same devnet SVM: (a) credential verification throughput of the server (a fresh
// 402 challenge, then the credential: pull = check, send and confirm a pre-signed transaction; push =
// fetch and check a landed one), (b) end-to-end p50 of a pull payment (client signs → server settles → 200).
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

function servers(node, w) {
  const ours = createServer({
    realm,
    secrets: [secret],
    methods: [
      chargeServer({
        rpcUrl: node.info.rpcUrl,
        network: 'localnet',
        currency: w.mint,
        decimals: 6,
        recipient: w.recipient,
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
        rpcUrl: node.info.rpcUrl,
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

async function throughput(mode) {
  const node = await startSolana()
  try {
    const w = await world(node)
    const fetchers = servers(node, w)
    const rpc = createSolanaRpc(node.info.rpcUrl)
    let offset = 0
    const prepare = (side) => async (count) => {
      offset += count
      const txs = await transfers(node, w, count, offset)
      const credentials = []
      for (const transaction of txs) {
        const challenge = Challenge.parseAll((await fetchers[side](url)).headers.get('www-authenticate'))[0]
        let payload = { type: 'transaction', transaction }
        if (mode === 'push') {
          const signature = await rpc.sendTransaction(transaction, { encoding: 'base64' }).send()
          payload = { type: 'signature', signature }
        }
        credentials.push(Credential.format({ challenge, payload }))
      }
      return credentials
    }
    const submit = (side) => async (authorization) => {
      const response = await fetchers[side](url, { headers: { authorization } })
      if (response.status !== 200)
        throw new Error(`${side}: expected 200, got ${response.status} ${await response.text()}`)
    }
    return await compare(
      { mppkit: submit('mppkit'), mppx: submit('mppx') },
      { iterations: 40, rounds: 3, prepare: { mppkit: prepare('mppkit'), mppx: prepare('mppx') } },
    )
  } finally {
    await node.stop()
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
    { name: 'solana charge verification (push)', mppkit: push.mppkit, mppx: push.mppx, target: 3 },
    {
      name: 'solana charge e2e p50 (devnet SVM, pull)',
      mppkit: e2e.mppkit.p50,
      mppx: e2e.mppx.p50,
      unit: 'ms',
      target: 1,
    },
  ]
}

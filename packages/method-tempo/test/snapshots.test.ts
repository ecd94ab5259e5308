// Inline snapshots of the wire strings the Tempo rail produces from fixed inputs, so any change to what
// goes on the wire shows up in review. Hashes and timestamps of live payments are replaced by
// placeholders after checking their shape.
import { Challenge, Credential, Receipt } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { type Address, bytesToHex, type Hex, hashTypedData } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { chargeClient, sessionClient } from '../src/client/index.js'
import { Attribution, charge, Proof, Voucher } from '../src/index.js'
import { chargeServer, sessionServer } from '../src/server/index.js'

// Fixed inputs. The keys are fixed test keys (the first is anvil's well-known dev key #0), never real funds.
const payer = privateKeyToAccount('0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80')
const feePayer = privateKeyToAccount('0x59c6995e998f97a5a0044966f0945aa0a2ee7f5d3c3b8b1eb0a3e0d8a0c6b5b2')
const pathUsd = '0x20c0000000000000000000000000000000000000' as Address
const recipient = '0x70997970C51812dc3A010C7d01b50e20d17dc79C' as Address
const escrow = '0x5FbDB2315678afecb367f032d93F642f64180aa3' as Address
const chainId = 42431
const realm = 'api.example.com'
const secret = 'snapshot-secret-0123456789abcdef0123456789'
const fixedNow = Date.parse('2025-01-01T00:00:00Z')
const challengeId = 'kM9xPqWvT2nJrHsY4aLbE7cF'
const channelId = '0x6d0f4fdf1f2f6a1f0e9c3a7d3b8f1e2c4a5b6c7d8e9f0a1b2c3d4e5f60718293' as Hex

async function challengeFor(options: Partial<Parameters<typeof chargeServer>[0]>, amount: string) {
  const server = createServer({
    realm,
    secrets: [secret],
    now: () => fixedNow,
    methods: [
      chargeServer({ rpcUrl: 'http://127.0.0.1:9', chainId, currency: pathUsd, recipient, ...options }),
    ],
  })
  const handler = server.protect(
    { offers: [{ method: 'tempo', request: { amount } }] },
    () => new Response('ok'),
  )
  const response = await handler(new Request('https://api.example.com/r'))
  expect(response.status).toBe(402)
  return response.headers.get('www-authenticate')!
}

describe('charge challenge', () => {
  it('plain charge: header and decoded request', async () => {
    const header = await challengeFor({}, '1000')
    // The id (HMAC) covers a random opaque nonce: both are replaced after checking their shape.
    expect(header).toMatch(/ id="[A-Za-z0-9_-]{43}",/)
    expect(header).toMatch(/ opaque="[A-Za-z0-9_-]+"$/)
    expect(
      header.replace(/ id="[^"]+"/, ' id="<id>"').replace(/ opaque="[^"]+"/, ' opaque="<opaque>"'),
    ).toMatchInlineSnapshot(
      `"Payment id="<id>", realm="api.example.com", method="tempo", intent="charge", request="eyJhbW91bnQiOiIxMDAwIiwiY3VycmVuY3kiOiIweDIwYzAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAiLCJtZXRob2REZXRhaWxzIjp7ImNoYWluSWQiOjQyNDMxfSwicmVjaXBpZW50IjoiMHg3MDk5Nzk3MEM1MTgxMmRjM0EwMTBDN2QwMWI1MGUyMGQxN2RjNzlDIn0", expires="2025-01-01T00:05:00Z", opaque="<opaque>""`,
    )
    expect(Challenge.parseAll(header)[0]!.request).toMatchInlineSnapshot(`
      {
        "amount": "1000",
        "currency": "0x20c0000000000000000000000000000000000000",
        "methodDetails": {
          "chainId": 42431,
        },
        "recipient": "0x70997970C51812dc3A010C7d01b50e20d17dc79C",
      }
    `)
  })
  it('fee payer, splits and a fixed memo', async () => {
    const header = await challengeFor(
      {
        feePayer,
        memo: `0x${'ab'.repeat(32)}`,
        splits: [{ amount: '100', recipient: feePayer.address }],
      },
      '1000',
    )
    expect(Challenge.parseAll(header)[0]!.request).toMatchInlineSnapshot(`
      {
        "amount": "1000",
        "currency": "0x20c0000000000000000000000000000000000000",
        "methodDetails": {
          "chainId": 42431,
          "feePayer": true,
          "memo": "0xabababababababababababababababababababababababababababababababab",
          "splits": [
            {
              "amount": "100",
              "recipient": "0x8085E167ea68b2706F5511A03d1b3c1F61Ad6a3a",
            },
          ],
          "supportedModes": [
            "pull",
          ],
        },
        "recipient": "0x70997970C51812dc3A010C7d01b50e20d17dc79C",
      }
    `)
  })
  it('push only', async () => {
    const header = await challengeFor({ supportedModes: ['push'] }, '250')
    expect(Challenge.parseAll(header)[0]!.request).toMatchInlineSnapshot(`
      {
        "amount": "250",
        "currency": "0x20c0000000000000000000000000000000000000",
        "methodDetails": {
          "chainId": 42431,
          "supportedModes": [
            "push",
          ],
        },
        "recipient": "0x70997970C51812dc3A010C7d01b50e20d17dc79C",
      }
    `)
  })
})

describe('Attribution', () => {
  it('memo for a fixed realm and challenge id', () => {
    const memo = Attribution.encode({ challengeId, realm })
    expect(memo).toMatchInlineSnapshot(`"0xef1ed712011ece072f76bd8b82350e00000000000000000000ee8a44196d9258"`)
    expect(Attribution.encode({ challengeId, realm, clientId: 'my-agent' })).toMatchInlineSnapshot(
      `"0xef1ed712011ece072f76bd8b82350e13f85972c34310403135ee8a44196d9258"`,
    )
    expect(Attribution.decode(memo)).toMatchInlineSnapshot(`
      {
        "client": undefined,
        "nonce": "0xee8a44196d9258",
        "server": "0x1ece072f76bd8b82350e",
        "version": 1,
      }
    `)
  })
})

describe('Voucher', () => {
  const parameters = { chainId, escrow, channelId, cumulativeAmount: 250_000n }
  it('v1 digest, typed data and signature', async () => {
    const digest = bytesToHex(Voucher.digest(parameters))
    // The hand-rolled digest is the EIP-712 hash of the typed data.
    expect(digest).toBe(hashTypedData(Voucher.typedData(parameters)))
    expect(digest).toMatchInlineSnapshot(
      `"0xdbf3a045ab1a6f039b3f2c4cc7bad96f4749e4170f9a18d4ec0bd2a52dd656a5"`,
    )
    expect(bytesToHex(Voucher.domainSeparator({ chainId, escrow }))).toMatchInlineSnapshot(
      `"0x68ed04fdcb8f3268e2bab95be6af71491b9b39705c523f16dc806fda80ecf887"`,
    )
    expect(Voucher.typedData(parameters)).toMatchInlineSnapshot(`
      {
        "domain": {
          "chainId": 42431,
          "name": "Tempo Stream Channel",
          "verifyingContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
          "version": "1",
        },
        "message": {
          "channelId": "0x6d0f4fdf1f2f6a1f0e9c3a7d3b8f1e2c4a5b6c7d8e9f0a1b2c3d4e5f60718293",
          "cumulativeAmount": 250000n,
        },
        "primaryType": "Voucher",
        "types": {
          "Voucher": [
            {
              "name": "channelId",
              "type": "bytes32",
            },
            {
              "name": "cumulativeAmount",
              "type": "uint128",
            },
          ],
        },
      }
    `)
    expect(await Voucher.sign(payer, parameters)).toMatchInlineSnapshot(
      `"0x203451e4eec596e7d8bc3c805f4fc693687beaf0280c31b339ba6ed8d3bc9cbb173e862d63819c7859e15bf09b73b017ae0900ae6cd08f520ac1c2aebbc009001c"`,
    )
  })
  it('v2 digest and typed data', () => {
    const v2 = { ...parameters, protocol: 'v2' as const }
    const digest = bytesToHex(Voucher.digest(v2))
    expect(digest).toBe(hashTypedData(Voucher.typedData(v2)))
    expect(digest).toMatchInlineSnapshot(
      `"0x6e5364c6f4e36a4c13bac7767ceed73a554df0afa3c72f2a3ee4cdf1fc599e3c"`,
    )
    expect(Voucher.typedData(v2)).toMatchInlineSnapshot(`
      {
        "domain": {
          "chainId": 42431,
          "name": "TIP20 Channel Reserve",
          "verifyingContract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
          "version": "1",
        },
        "message": {
          "channelId": "0x6d0f4fdf1f2f6a1f0e9c3a7d3b8f1e2c4a5b6c7d8e9f0a1b2c3d4e5f60718293",
          "cumulativeAmount": 250000n,
        },
        "primaryType": "Voucher",
        "types": {
          "Voucher": [
            {
              "name": "channelId",
              "type": "bytes32",
            },
            {
              "name": "cumulativeAmount",
              "type": "uint96",
            },
          ],
        },
      }
    `)
  })
})

describe('Proof (zero amount)', () => {
  it('source, typed data and signature', async () => {
    expect(Proof.source({ chainId, address: payer.address })).toMatchInlineSnapshot(
      `"did:pkh:eip155:42431:0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"`,
    )
    const typedData = Proof.typedData({ chainId, challengeId, realm, account: payer.address })
    expect(typedData).toMatchInlineSnapshot(`
      {
        "domain": {
          "chainId": 42431,
          "name": "MPP",
          "version": "3",
        },
        "message": {
          "account": "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
          "challengeId": "kM9xPqWvT2nJrHsY4aLbE7cF",
          "realm": "api.example.com",
        },
        "primaryType": "Proof",
        "types": {
          "Proof": [
            {
              "name": "account",
              "type": "address",
            },
            {
              "name": "challengeId",
              "type": "string",
            },
            {
              "name": "realm",
              "type": "string",
            },
          ],
        },
      }
    `)
    expect(hashTypedData(typedData as never)).toMatchInlineSnapshot(
      `"0x306cbc02355d035a2ed1e058f410bab22726d52b8fb9592d580671d719bdf42a"`,
    )
    expect(await payer.signTypedData(typedData as never)).toMatchInlineSnapshot(
      `"0xea5ecd8bd07d4afb97eaadb792344657fa7c5cd00b005c4d9cea650999e3b90a4cd5dedec61f0e873fbbae67f089d1e0f9b279f9d3c7407cd154edda48e995831c"`,
    )
    expect(
      [1, 2].map((version) =>
        hashTypedData(
          Proof.typedData({
            version: version as Proof.Version,
            chainId,
            challengeId,
            realm,
            account: payer.address,
          }) as never,
        ),
      ),
    ).toMatchInlineSnapshot(`
      [
        "0xcd003ee1d786d801f8bf819fd22ea36db9e31cb5ace01b1f11c0758939b0ed6b",
        "0x8dcb4416cc61070e301e1d4caba09d8bd778daf35808dfecf2e1767db855d52a",
      ]
    `)
  })

  it('a zero-amount charge: credential source and receipt', async () => {
    const server = createServer({
      realm,
      secrets: [secret],
      now: () => fixedNow,
      methods: [chargeServer({ rpcUrl: 'http://127.0.0.1:9', chainId, currency: pathUsd, recipient })],
    })
    const handler = server.protect(
      { offers: [{ method: 'tempo', request: { amount: '0' } }] },
      () => new Response('free'),
    )
    const challenge = Challenge.parseAll(
      (await handler(new Request('https://api.example.com/r'))).headers.get('www-authenticate')!,
    )[0]!
    // The client's own payload (its fetch would refuse the challenge: the fixed clock makes it expired).
    const { payload, source } = await chargeClient({ account: payer, chainId }).createPayload({
      challenge,
      request: charge.request.parse(challenge.request),
      url: 'https://api.example.com/r',
    })
    // The challenge id covers a random opaque nonce, so the signature over it is replaced.
    expect(payload).toMatchObject({ type: 'proof', signature: expect.stringMatching(/^0x[0-9a-f]{130}$/) })
    expect({ source, payload: { ...payload, signature: '<signature>' } }).toMatchInlineSnapshot(`
      {
        "payload": {
          "signature": "<signature>",
          "type": "proof",
        },
        "source": "did:pkh:eip155:42431:0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
      }
    `)
    const response = await handler(
      new Request('https://api.example.com/r', {
        headers: { authorization: Credential.format({ challenge, payload, ...(source ? { source } : {}) }) },
      }),
    )
    expect(response.status, await response.clone().text()).toBe(200)
    // Fixed clock: the timestamp is deterministic; the reference is the (nonce-bound) challenge id.
    const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
    expect(receipt.reference).toBe(challenge.id)
    expect(receipt.challengeId).toBe(challenge.id)
    expect({ ...receipt, reference: '<challenge id>', challengeId: '<challenge id>' }).toMatchInlineSnapshot(`
      {
        "challengeId": "<challenge id>",
        "method": "tempo",
        "reference": "<challenge id>",
        "status": "success",
        "timestamp": "2025-01-01T00:00:00Z",
      }
    `)
  })
})

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

describe.skipIf(!!reason)('receipts of live payments on anvil', () => {
  let devnet: TempoDevnet
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 3 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })
  /** Checks the shape of the non-deterministic fields, then replaces them with placeholders. */
  const stable = (receipt: Receipt.Receipt) => {
    const out: Record<string, unknown> = { ...receipt }
    expect(receipt.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/)
    out.timestamp = '<timestamp>'
    for (const field of ['reference', 'channelId', 'txHash', 'challengeId'])
      if (typeof out[field] === 'string') {
        expect(out[field]).toMatch(field === 'challengeId' ? /^[A-Za-z0-9_-]+$/ : /^0x[0-9a-f]{64}$/i)
        out[field] = `<${field}>`
      }
    return out
  }

  it('charge (pull) and session (open) receipts', async () => {
    const { info } = devnet
    const payee = privateKeyToAccount(info.accounts[0]!.privateKey)
    const server = createServer({
      realm,
      secrets: [secret],
      methods: [
        chargeServer({
          rpcUrl: info.rpcUrl,
          chainId: info.chainId,
          currency: info.tokens.pathUsd,
          recipient: payee.address,
          timeout: 5_000,
        }),
        sessionServer({
          rpcUrl: info.rpcUrl,
          chainId: info.chainId,
          currency: info.tokens.pathUsd,
          account: payee,
          escrow: info.escrow,
          timeout: 5_000,
        }),
      ],
    })
    const chargeRoute = server.protect(
      { offers: [{ method: 'tempo', request: { amount: '1000', externalId: 'order-42' } }] },
      () => new Response('paid'),
    )
    const sessionRoute = server.protect(
      { offers: [{ method: 'tempo', intent: 'session', request: { amount: '25', unitType: 'llm_token' } }] },
      () => new Response('metered'),
    )
    const account = privateKeyToAccount(info.accounts[1]!.privateKey)
    const chargeFetch = ((i: RequestInfo, n?: RequestInit) => chargeRoute(new Request(i, n))) as typeof fetch
    const paid = await createClient({
      methods: [chargeClient({ account, rpcUrl: info.rpcUrl, chainId: info.chainId, mode: 'pull' })],
      fetch: chargeFetch,
    }).fetch('http://127.0.0.1/r')
    expect(paid.status).toBe(200)
    expect(stable(Receipt.parse(paid.headers.get('payment-receipt')!))).toMatchInlineSnapshot(`
      {
        "challengeId": "<challengeId>",
        "externalId": "order-42",
        "method": "tempo",
        "reference": "<reference>",
        "status": "success",
        "timestamp": "<timestamp>",
      }
    `)

    const sessionFetch = ((i: RequestInfo, n?: RequestInit) =>
      sessionRoute(new Request(i, n))) as typeof fetch
    const metered = await createClient({
      methods: [
        sessionClient({
          account,
          rpcUrl: info.rpcUrl,
          chainId: info.chainId,
          deposit: 1_000n,
          fetch: sessionFetch,
        }),
      ],
      fetch: sessionFetch,
      policy: { maxDeposit: 10_000n },
    }).fetch('http://127.0.0.1/r')
    expect(metered.status, await metered.clone().text()).toBe(200)
    const receipt = Receipt.parse(metered.headers.get('payment-receipt')!)
    expect(receipt.reference).toBe(receipt.channelId)
    expect(stable(receipt)).toMatchInlineSnapshot(`
      {
        "acceptedCumulative": "25",
        "challengeId": "<challengeId>",
        "channelId": "<channelId>",
        "intent": "session",
        "method": "tempo",
        "reference": "<reference>",
        "spent": "25",
        "status": "success",
        "timestamp": "<timestamp>",
        "units": 1,
      }
    `)
  })
})

// x402's EIP-2612 gas sponsoring (`eip2612GasSponsoring`) with x402's Permit2 form on the devnet: a payer
// with no Permit2 allowance signs an EIP-2612 permit of the token to Permit2 beside its Permit2 transfer,
// and the facilitator submits both in one call of x402's proxy (`settleWithPermit`), paying the gas. The
// devnet's `Eip2612Token` has `permit`; its `Eip3009Token` has none. First the x402 stack alone
// (`@x402/fetch` → `@x402/hono` → `@x402/core`'s in-process facilitator with `@x402/evm`), which proves the
// token and proxy are what x402 expects; then our server paid by `@x402/fetch`, our client paying
// `@x402/hono`, and the permits our server refuses before its facilitator sees them.
import { ConfigurationError } from '@mppkit/core'
import { create as createClient, PaymentFailedError, Protocol, receipt } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { x402Client } from '@x402/core/client'
import type { FacilitatorClient } from '@x402/core/server'
import { x402ResourceServer } from '@x402/core/server'
import { toClientEvmSigner } from '@x402/evm'
import { ExactEvmScheme } from '@x402/evm/exact/client'
import { ExactEvmScheme as ExactEvmServerScheme } from '@x402/evm/exact/server'
// A dependency of @x402/hono (2.27.0), as `hono` is: x402's own declaration of the extension.
import { declareEip2612GasSponsoringExtension } from '@x402/extensions'
import { wrapFetchWithPayment } from '@x402/fetch'
import { paymentMiddleware } from '@x402/hono'
import { Hono } from 'hono'
import {
  type Address,
  decodeFunctionData,
  erc20Abi,
  getAddress,
  type Hex,
  maxUint256,
  parseEventLogs,
} from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  eip2612TokenAbi,
  permit2Address,
  startTempo,
  type TempoDevnet,
  type TempoDevnetInfo,
  tempoUnavailableReason,
  x402ExactPermit2ProxyAbi,
} from '../../devnet/src/tempo/index.js'
import { charge, x402 } from '../src/client/index.js'
import { charge as chargeServer, x402 as dualStack } from '../src/server/index.js'
import * as Wire from '../src/Wire.js'
import * as X402Eip2612 from '../src/X402Eip2612.js'
import type * as X402Permit2 from '../src/X402Permit2.js'
import { asFetch, facilitator, walletOf } from './peers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

let devnet: TempoDevnet
const url = 'http://localhost/paid'
// Dev accounts: 0 reads, 4 is paid, 5 is the facilitator (gas), 9 is the thief; the others pay.
const payee = 4
const thief = 9

beforeAll(async () => {
  if (reason) return
  devnet = await startTempo({ accounts: 10 })
})
afterAll(async () => {
  await devnet?.stop()
})

const read = (info: TempoDevnetInfo) => walletOf(info, 0)
const balance = (info: TempoDevnetInfo, owner: Address, token = info.eip2612Token) =>
  read(info).readContract({ address: token, abi: erc20Abi, functionName: 'balanceOf', args: [owner] })
const allowance = (info: TempoDevnetInfo, owner: Address) =>
  read(info).readContract({
    address: info.eip2612Token,
    abi: erc20Abi,
    functionName: 'allowance',
    args: [owner, permit2Address],
  })
const nonceOf = (info: TempoDevnetInfo, owner: Address) =>
  read(info).readContract({
    address: info.eip2612Token,
    abi: eip2612TokenAbi,
    functionName: 'nonces',
    args: [owner],
  })
/** x402's own declaration of the extension (what `@x402/hono` advertises). */
const declared = () => declareEip2612GasSponsoringExtension().eip2612GasSponsoring!
const domainOf = (info: TempoDevnetInfo) => ({ name: info.eip2612.name, version: info.eip2612.version })

/** An EIP-2612 permit signed by dev account `index` (the message as given, for tampering tests). */
async function signPermit(
  info: TempoDevnetInfo,
  index: number,
  message: { spender: Address; value: bigint; nonce: bigint; deadline: bigint },
  token = info.eip2612Token,
) {
  const account = privateKeyToAccount(info.accounts[index]!.privateKey)
  return account.signTypedData({
    domain: { ...domainOf(info), chainId: info.chainId, verifyingContract: token },
    types: X402Eip2612.permitTypes,
    primaryType: 'Permit',
    message: { owner: account.address, ...message },
  })
}

/** An `@x402/hono` v2 app selling `GET /paid` through Permit2, advertising `eip2612GasSponsoring`. */
function honoSponsored(
  info: TempoDevnetInfo,
  options: { facilitator: FacilitatorClient; payTo: Address; amount: string },
) {
  const server = new x402ResourceServer(options.facilitator).register(
    `eip155:${info.chainId}`,
    new ExactEvmServerScheme(),
  )
  let runs = 0
  const app = new Hono()
  app.use(
    paymentMiddleware(
      {
        'GET /paid': {
          accepts: {
            scheme: 'exact',
            network: `eip155:${info.chainId}`,
            payTo: options.payTo,
            price: {
              amount: options.amount,
              asset: info.eip2612Token,
              // x402 clients sign the permit under the domain `extra` names (none without it).
              extra: { assetTransferMethod: 'permit2', ...domainOf(info) },
            },
            maxTimeoutSeconds: 120,
          },
          description: 'a paid thing',
          extensions: { ...declareEip2612GasSponsoringExtension() },
        },
      },
      server,
    ),
  )
  app.get('/paid', (c) => {
    runs++
    return c.text('paid content')
  })
  return { fetch: (request: Request) => app.fetch(request) as Promise<Response>, runs: () => runs }
}

/**
 * `@x402/fetch` paying with dev account `index` through `@x402/evm`'s exact client, given a chain reader
 * (it reads the Permit2 allowance and the EIP-2612 nonce), choosing the Permit2 requirement.
 */
function x402Payer(info: TempoDevnetInfo, index: number, handler: (request: Request) => Promise<Response>) {
  const network = `eip155:${info.chainId}` as const
  const signer = toClientEvmSigner(privateKeyToAccount(info.accounts[index]!.privateKey), read(info) as never)
  const client = x402Client.fromConfig({
    paymentRequirementsSelector: (_version, requirements) =>
      requirements.find((entry) => entry.extra?.assetTransferMethod === 'permit2') ?? requirements[0]!,
    schemes: [{ network, client: new ExactEvmScheme(signer) }],
    spendControls: {
      allowedAssets: [{ network, asset: info.eip2612Token, maxAmountPerPayment: '1000000' }],
    },
  })
  const sent: string[] = []
  const fetch = wrapFetchWithPayment(async (input, init) => {
    const request = new Request(input, init)
    const signature = request.headers.get(Wire.headers.paymentSignature)
    if (signature) sent.push(signature)
    return handler(request)
  }, client)
  return { fetch, sent }
}

type Document = {
  accepted: Record<string, unknown>
  payload: { signature: Hex; permit2Authorization: X402Permit2.Authorization }
  extensions?: Record<string, { info: Record<string, string>; schema?: unknown }>
}

/** What the settlement transaction did: the proxy function called, its Transfer and Approval logs. */
async function settlementOf(info: TempoDevnetInfo, transaction: Hex) {
  const sent = await read(info).getTransaction({ hash: transaction })
  const landed = await read(info).getTransactionReceipt({ hash: transaction })
  const logs = landed.logs.filter((log) => getAddress(log.address) === getAddress(info.eip2612Token))
  return {
    to: getAddress(sent.to!),
    status: landed.status,
    call: decodeFunctionData({ abi: x402ExactPermit2ProxyAbi, data: sent.input }),
    transfers: parseEventLogs({ abi: erc20Abi, logs, eventName: 'Transfer' }).map((log) => log.args),
    approvals: parseEventLogs({ abi: erc20Abi, logs, eventName: 'Approval' }).map((log) => log.args),
  }
}

describe.skipIf(reason)('devnet: Eip2612Token and the proxy’s settleWithPermit', () => {
  it('permit sets the allowance and spends the nonce once; a wrong signer or a past deadline reverts', async () => {
    const info = devnet.info
    const owner = info.accounts[8]!.address
    const spender = info.accounts[7]!.address
    const wallet = walletOf(info, 7)
    const deadline = BigInt(Math.floor(Date.now() / 1000) + 600)
    const submit = (signature: Hex, value: bigint, at = deadline) => {
      const { r, s, yParity } = parseRsv(signature)
      return wallet.simulateContract({
        address: info.eip2612Token,
        abi: eip2612TokenAbi,
        functionName: 'permit',
        args: [owner, spender, value, at, yParity + 27, r, s],
      })
    }
    const good = await signPermit(info, 8, { spender, value: 5n, nonce: 0n, deadline })
    // Signed by someone else for this owner, or replayed after its deadline: refused.
    const forged = await signPermit(info, 7, { spender, value: 5n, nonce: 0n, deadline })
    await expect(submit(forged, 5n)).rejects.toThrow(/InvalidSignature/)
    const stale = await signPermit(info, 8, { spender, value: 5n, nonce: 0n, deadline: 1n })
    await expect(submit(stale, 5n, 1n)).rejects.toThrow(/PermitExpired/)
    // Another value than signed: the digest differs.
    await expect(submit(good, 6n)).rejects.toThrow(/InvalidSignature/)
    const { request } = await submit(good, 5n)
    const hash = await wallet.writeContract(request)
    expect((await wallet.waitForTransactionReceipt({ hash })).status).toBe('success')
    expect(
      await read(info).readContract({
        address: info.eip2612Token,
        abi: erc20Abi,
        functionName: 'allowance',
        args: [owner, spender],
      }),
    ).toBe(5n)
    expect(await nonceOf(info, owner)).toBe(1n)
    // Its nonce is spent: the same permit again is refused.
    await expect(submit(good, 5n)).rejects.toThrow(/InvalidSignature/)
  })

  it('the proxy refuses an EIP-2612 value other than the permitted amount, smaller or larger (x402’s Permit2612AmountMismatch)', async () => {
    const info = devnet.info
    const deadline = BigInt(Math.floor(Date.now() / 1000) + 600)
    const permit = { permitted: { token: info.eip2612Token, amount: 1000n }, nonce: 1n, deadline }
    const witness = { to: info.accounts[payee]!.address, validAfter: 0n }
    for (const value of [999n, 1001n]) {
      const signature = await signPermit(info, 8, { spender: permit2Address, value, nonce: 1n, deadline })
      const { r, s, yParity } = parseRsv(signature)
      await expect(
        walletOf(info, 5).simulateContract({
          address: info.x402Permit2Proxy,
          abi: x402ExactPermit2ProxyAbi,
          functionName: 'settleWithPermit',
          args: [
            { value, deadline, r, s, v: yParity + 27 },
            permit,
            info.accounts[8]!.address,
            witness,
            '0x',
          ],
        }),
      ).rejects.toThrow(/Permit2612AmountMismatch/)
    }
  })
})

describe.skipIf(reason)('x402 EIP-2612 gas sponsoring, the x402 stack alone', () => {
  it('a payer with no Permit2 allowance pays through settleWithPermit: one transfer, the approval exactly the amount', async () => {
    const info = devnet.info
    const fac = facilitator(info, 5)
    const payTo = info.accounts[payee]!.address
    const payer = info.accounts[1]!.address
    expect(await allowance(info, payer)).toBe(0n)
    const server = honoSponsored(info, { facilitator: fac.client, payTo, amount: '1000' })
    const { fetch, sent } = x402Payer(info, 1, server.fetch)
    const [payeeBefore, payerBefore] = [await balance(info, payTo), await balance(info, payer)]
    const response = await fetch(url)
    expect(response.status).toBe(200)
    expect(server.runs()).toBe(1)
    const document = Wire.decode(sent[0]!) as Document
    // What @x402/evm sends: the server's declaration echoed, the permit's fields added to its info.
    const { signature, deadline, nonce, ...info2612 } = document.extensions!.eip2612GasSponsoring!.info
    expect(info2612).toEqual({
      description: declared().info.description,
      version: '1',
      from: payer,
      asset: getAddress(info.eip2612Token),
      spender: permit2Address,
      amount: '1000',
    })
    expect(nonce).toBe('0')
    expect(deadline).toBe(document.payload.permit2Authorization.deadline)
    expect(signature).toMatch(/^0x[0-9a-f]{130}$/)
    const settled = Wire.decode(response.headers.get(Wire.headers.paymentResponse)!)
    const landed = await settlementOf(info, settled.transaction as Hex)
    expect(landed.to).toBe(info.x402Permit2Proxy)
    expect(landed.call.functionName).toBe('settleWithPermit')
    expect(landed.transfers).toEqual([{ from: payer, to: payTo, value: 1000n }])
    expect(landed.approvals).toEqual([{ owner: payer, spender: permit2Address, value: 1000n }])
    expect((await balance(info, payTo)) - payeeBefore).toBe(1000n)
    expect(payerBefore - (await balance(info, payer))).toBe(1000n)
    expect(await allowance(info, payer)).toBe(0n)
    expect(await nonceOf(info, payer)).toBe(1n)
  })
})

describe.skipIf(reason)('x402 EIP-2612 gas sponsoring, our dual-stack server', () => {
  const setup = (
    overrides: { domain?: boolean; eip2612?: boolean; currency?: 'eip2612' | 'eip3009' } = {},
  ) => {
    const info = devnet.info
    const fac = facilitator(info, 5)
    const payTo = info.accounts[payee]!.address
    const currency = overrides.currency === 'eip3009' ? info.eip3009Token : info.eip2612Token
    const server = createServer({
      realm: 'localhost',
      secrets: ['x402-compat-test-secret-0123456789abcdef'],
      methods: [
        chargeServer({
          chainId: info.chainId,
          currency,
          recipient: payTo,
          facilitator: fac.client,
          client: read(info),
          x402Permit2: true,
          ...(overrides.domain === false
            ? { credentialTypes: ['permit2'] as const, wallet: walletOf(info, 6) }
            : { domain: domainOf(info), eip2612: overrides.eip2612 ?? true }),
        }),
      ],
    })
    let runs = 0
    const handler = dualStack(server, { maxTimeoutSeconds: 120 }).protect(
      { offers: [{ method: 'evm', request: { amount: '1000' } }] },
      () => {
        runs++
        return new Response('paid content')
      },
    )
    return { info, fac, payTo, handler, runs: () => runs }
  }
  /** A PAYMENT-SIGNATURE @x402/fetch signs for the route (kept from the route). */
  const signedBy = async (index: number, handler: (request: Request) => Promise<Response>) => {
    let kept: string | undefined
    const payer = x402Payer(devnet.info, index, async (request) => {
      const header = request.headers.get(Wire.headers.paymentSignature)
      if (header === null) return handler(request)
      kept = header
      return new Response('kept', { status: 418 })
    })
    await payer.fetch(url)
    return { header: kept!, document: Wire.decode(kept!) as Document }
  }
  const present = (handler: (request: Request) => Promise<Response>, header: string) =>
    handler(new Request(url, { headers: { [Wire.headers.paymentSignature]: header } }))

  it('advertises the extension with the Permit2 requirement; @x402/fetch without an allowance pays it once', async () => {
    const { info, fac, payTo, handler, runs } = setup()
    const required = Wire.decode((await handler(new Request(url))).headers.get(Wire.headers.paymentRequired)!)
    expect((required.accepts as { extra: unknown }[]).map((entry) => entry.extra)).toEqual([
      domainOf(info),
      { assetTransferMethod: 'permit2', ...domainOf(info) },
    ])
    expect(required.extensions).toEqual({ eip2612GasSponsoring: X402Eip2612.declaration })
    const payer = info.accounts[2]!.address
    expect(await allowance(info, payer)).toBe(0n)
    const [payeeBefore, payerBefore] = [await balance(info, payTo), await balance(info, payer)]
    const { fetch, sent } = x402Payer(info, 2, handler)
    const response = await fetch(url)
    expect(response.status, await response.clone().text()).toBe(200)
    expect(runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
    const document = Wire.decode(sent[0]!) as Document
    expect(document.extensions!.eip2612GasSponsoring!.info).toMatchObject({
      description: X402Eip2612.declaration.info.description,
      from: payer,
      spender: permit2Address,
      amount: '1000',
    })
    const settled = Wire.decode(response.headers.get(Wire.headers.paymentResponse)!)
    expect(settled).toMatchObject({ success: true, payer, network: `eip155:${info.chainId}` })
    const landed = await settlementOf(info, settled.transaction as Hex)
    expect(landed.call.functionName).toBe('settleWithPermit')
    expect(landed.transfers).toEqual([{ from: payer, to: payTo, value: 1000n }])
    expect((await balance(info, payTo)) - payeeBefore).toBe(1000n)
    expect(payerBefore - (await balance(info, payer))).toBe(1000n)
    expect(await allowance(info, payer)).toBe(0n)
    // Replayed: its Permit2 nonce is claimed; nothing reaches the facilitator or moves again.
    expect((await present(handler, sent[0]!)).status).toBe(402)
    expect(runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
    expect((await balance(info, payTo)) - payeeBefore).toBe(1000n)
  })

  it('without `eip2612` nothing is advertised: @x402/fetch sends no permit and the facilitator refuses (no allowance)', async () => {
    const { info, fac, payTo, handler, runs } = setup({ eip2612: false })
    const required = Wire.decode((await handler(new Request(url))).headers.get(Wire.headers.paymentRequired)!)
    expect(required.extensions).toBeUndefined()
    expect((required.accepts as { extra: unknown }[])[1]!.extra).toEqual({ assetTransferMethod: 'permit2' })
    const before = await balance(info, payTo)
    const { fetch, sent } = x402Payer(info, 3, handler)
    const response = await fetch(url)
    expect(response.status).toBe(402)
    expect(Wire.decode(sent[0]!).extensions).toBeUndefined()
    expect(((await response.json()) as { reason?: string }).reason).toBe('permit2_allowance_required')
    expect(fac.counts.settle).toBe(0)
    expect(runs()).toBe(0)
    expect(await balance(info, payTo)).toBe(before)
  })

  it('refuses a wrong permit with a clear 402 before its facilitator sees it; nothing moves', async () => {
    const { info, fac, payTo, handler, runs } = setup()
    const { header, document } = await signedBy(3, handler)
    const payer = info.accounts[3]!.address
    const signed = document.extensions!.eip2612GasSponsoring!.info
    const deadline = BigInt(document.payload.permit2Authorization.deadline)
    const withInfo = (info2612: Record<string, string>) =>
      Wire.encode({
        ...document,
        extensions: {
          eip2612GasSponsoring: { ...document.extensions!.eip2612GasSponsoring, info: info2612 },
        },
      })
    const thiefAddress = info.accounts[thief]!.address
    const cases: Record<string, string>[] = [
      // Signed for another spender than Permit2.
      {
        ...signed,
        spender: thiefAddress,
        signature: await signPermit(info, 3, { spender: thiefAddress, value: 1000n, nonce: 0n, deadline }),
      },
      // Signed for less than the payment (x402's proxy would revert Permit2612AmountMismatch).
      {
        ...signed,
        amount: '999',
        signature: await signPermit(info, 3, { spender: permit2Address, value: 999n, nonce: 0n, deadline }),
      },
      // The signed permit with another deadline or nonce: the signature does not cover them.
      { ...signed, deadline: String(deadline + 1n) },
      { ...signed, nonce: '1' },
      // Another owner's permit, or another token's.
      {
        ...signed,
        from: info.accounts[1]!.address,
        signature: await signPermit(info, 1, { spender: permit2Address, value: 1000n, nonce: 1n, deadline }),
      },
      { ...signed, asset: info.eip3009Token },
      // Expired.
      {
        ...signed,
        deadline: '1',
        signature: await signPermit(info, 3, {
          spender: permit2Address,
          value: 1000n,
          nonce: 0n,
          deadline: 1n,
        }),
      },
      // Malformed: a 64-byte signature, a permit missing its nonce.
      { ...signed, signature: signed.signature!.slice(0, 130) },
      { ...signed, nonce: undefined as never },
    ]
    const refusals: string[] = []
    for (const info2612 of cases) {
      const response = await present(handler, withInfo(info2612))
      expect(response.status).toBe(402)
      const problem = (await response.json()) as { detail: string; reason?: string }
      refusals.push(`${problem.reason ?? '-'}: ${problem.detail}`)
    }
    expect(refusals).toMatchInlineSnapshot(`
      [
        "eip2612-wrong-spender: The EIP-2612 permit approves another spender than Permit2.",
        "eip2612-wrong-amount: The EIP-2612 permit approves another amount than the payment (x402’s proxy takes exactly the permitted amount).",
        "eip2612-invalid-signature: The EIP-2612 permit signature is invalid.",
        "eip2612-invalid-signature: The EIP-2612 permit signature is invalid.",
        "eip2612-wrong-owner: The EIP-2612 permit is signed for another owner than the payer.",
        "eip2612-wrong-asset: The EIP-2612 permit approves another token.",
        "eip2612-expired: The EIP-2612 permit has expired.",
        "-: PAYMENT-SIGNATURE is not an x402 exact payment: extensions.eip2612GasSponsoring.info.signature does not fit x402's EIP-2612 permit: a 65-byte signature.",
        "-: PAYMENT-SIGNATURE is not an x402 exact payment: extensions.eip2612GasSponsoring.info.nonce does not fit x402's EIP-2612 permit: Invalid input: expected string, received undefined.",
      ]
    `)
    expect(fac.counts.verify).toBe(0)
    expect(runs()).toBe(0)
    expect(await allowance(info, payer)).toBe(0n)
    expect(await nonceOf(info, payer)).toBe(0n)
    // The permit as signed pays (the refusals were the tampering's), once.
    const before = await balance(info, payTo)
    expect((await present(handler, header)).status).toBe(200)
    expect((await balance(info, payTo)) - before).toBe(1000n)
    expect(fac.counts.settle).toBe(1)
  })

  it('a server without the token’s EIP-712 domain refuses any permit (it cannot check one)', async () => {
    const { info, fac, handler, runs } = setup({ domain: false })
    const required = Wire.decode((await handler(new Request(url))).headers.get(Wire.headers.paymentRequired)!)
    expect(required.extensions).toBeUndefined()
    const { document } = await signedBy(6, handler)
    const authorization = document.payload.permit2Authorization
    const deadline = BigInt(authorization.deadline)
    const header = Wire.encode({
      ...document,
      extensions: {
        eip2612GasSponsoring: {
          info: {
            from: authorization.from,
            asset: info.eip2612Token,
            spender: permit2Address,
            amount: '1000',
            nonce: '0',
            deadline: authorization.deadline,
            signature: await signPermit(info, 6, {
              spender: permit2Address,
              value: 1000n,
              nonce: 0n,
              deadline,
            }),
            version: '1',
          },
        },
      },
    })
    const response = await present(handler, header)
    expect(response.status).toBe(402)
    expect(await response.json()).toMatchObject({
      reason: 'eip2612-not-offered',
      detail: 'This server takes no EIP-2612 permit for this token (its EIP-712 domain is not configured).',
    })
    expect(fac.counts.verify).toBe(0)
    expect(runs()).toBe(0)
  })

  it('refuses eip2612 without x402Permit2 or without the domain', () => {
    const info = devnet.info
    const base = {
      chainId: info.chainId,
      currency: info.eip2612Token,
      recipient: info.accounts[payee]!.address,
      facilitator: facilitator(info, 5).client,
    }
    const message = (create: () => unknown) => {
      try {
        create()
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigurationError)
        return (error as Error).message
      }
      return 'created'
    }
    expect(
      message(() => chargeServer({ ...base, domain: domainOf(info), eip2612: true })),
    ).toMatchInlineSnapshot(
      `"evm charge: eip2612 needs x402Permit2 and the token’s EIP-712 domain (domain): the permit is x402’s, signed under that domain"`,
    )
    expect(
      message(() =>
        chargeServer({
          ...base,
          credentialTypes: ['permit2'],
          wallet: walletOf(info, 6),
          x402Permit2: true,
          eip2612: true,
        }),
      ),
    ).toMatch(/^evm charge: eip2612 needs x402Permit2 and the token’s EIP-712 domain/)
  })
})

describe.skipIf(reason)('x402 EIP-2612 gas sponsoring, our client (charge + x402 plug)', () => {
  const setup = (
    payerIndex: number,
    options: { reader?: boolean; eip2612?: boolean; policy?: object; token?: 'eip3009' } = {},
  ) => {
    const info = devnet.info
    const fac = facilitator(info, 5)
    const payTo = info.accounts[payee]!.address
    const server =
      options.token === 'eip3009'
        ? honoSponsored({ ...info, eip2612Token: info.eip3009Token, eip2612: { ...info.eip3009 } } as never, {
            facilitator: fac.client,
            payTo,
            amount: '1000',
          })
        : honoSponsored(info, { facilitator: fac.client, payTo, amount: '1000' })
    const signer = privateKeyToAccount(info.accounts[payerIndex]!.privateKey)
    const signed: { primaryType: string; message: unknown }[] = []
    // Records what the account signs: nothing may be signed for a payment that is refused up front.
    const account = {
      ...signer,
      signTypedData: (async (data: Parameters<typeof signer.signTypedData>[0]) => {
        signed.push({ primaryType: data.primaryType as string, message: data.message })
        return signer.signTypedData(data)
      }) as typeof signer.signTypedData,
    }
    const sent: string[] = []
    const client = createClient({
      methods: [
        charge({
          account,
          ...(options.reader === false ? {} : { client: read(info) }),
          ...(options.eip2612 === undefined ? {} : { eip2612: options.eip2612 }),
        }),
      ],
      protocols: [Protocol.mpp, x402({ decimals: { [info.eip2612Token]: 6, [info.eip3009Token]: 6 } })],
      ...(options.policy ? { policy: options.policy } : {}),
      fetch: asFetch(async (request) => {
        const header = request.headers.get(Wire.headers.paymentSignature)
        if (header) sent.push(header)
        return server.fetch(request)
      }),
    })
    return { info, fac, payTo, server, client, sent, signed, payer: signer.address }
  }

  it('signs a permit of exactly the amount to Permit2 when the allowance is short; @x402/hono settles it once', async () => {
    const { info, fac, payTo, server, client, sent, signed, payer } = setup(6)
    expect(await allowance(info, payer)).toBe(0n)
    const [payeeBefore, payerBefore] = [await balance(info, payTo), await balance(info, payer)]
    const response = await client.fetch(url)
    expect(response.status, await response.clone().text()).toBe(200)
    expect(await response.text()).toBe('paid content')
    expect(server.runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
    expect(receipt(response)).toMatchObject({ status: 'success', method: 'evm', payer })
    expect(signed.map((entry) => entry.primaryType)).toEqual(['PermitWitnessTransferFrom', 'Permit'])
    const document = Wire.decode(sent[0]!) as Document
    const authorization = document.payload.permit2Authorization
    // x402's server checks the echo: the declaration's members are kept, the permit's fields added.
    const declaration = declared()
    expect(document.extensions!.eip2612GasSponsoring!.schema).toEqual(declaration.schema)
    const { signature, ...fields } = document.extensions!.eip2612GasSponsoring!.info
    expect(fields).toEqual({
      ...declaration.info,
      from: payer,
      asset: info.eip2612Token,
      spender: permit2Address,
      amount: '1000',
      nonce: '0',
      deadline: authorization.deadline,
      version: '1',
    })
    expect(signature).toMatch(/^0x[0-9a-f]{130}$/)
    const settled = Wire.decode(response.headers.get(Wire.headers.paymentResponse)!)
    const landed = await settlementOf(info, settled.transaction as Hex)
    expect(landed.call.functionName).toBe('settleWithPermit')
    expect(landed.transfers).toEqual([{ from: payer, to: payTo, value: 1000n }])
    expect(landed.approvals).toEqual([{ owner: payer, spender: permit2Address, value: 1000n }])
    expect((await balance(info, payTo)) - payeeBefore).toBe(1000n)
    expect(payerBefore - (await balance(info, payer))).toBe(1000n)
    // Nothing beyond the payment stays approved.
    expect(await allowance(info, payer)).toBe(0n)
  })

  it('with an allowance that covers the amount: no permit is signed, the declaration is only echoed', async () => {
    const { info, server, client, sent, signed, payer } = setup(7)
    const wallet = walletOf(info, 7)
    const approval = await wallet.writeContract({
      address: info.eip2612Token,
      abi: erc20Abi,
      functionName: 'approve',
      args: [permit2Address, maxUint256],
      gas: 100_000n,
    })
    await wallet.waitForTransactionReceipt({ hash: approval })
    const response = await client.fetch(url)
    expect(response.status, await response.clone().text()).toBe(200)
    expect(server.runs()).toBe(1)
    expect(signed.map((entry) => entry.primaryType)).toEqual(['PermitWitnessTransferFrom'])
    const document = Wire.decode(sent[0]!) as Document
    expect(document.extensions).toEqual({ eip2612GasSponsoring: declared() })
    const settled = Wire.decode(response.headers.get(Wire.headers.paymentResponse)!)
    expect((await settlementOf(info, settled.transaction as Hex)).call.functionName).toBe('settle')
    expect(await nonceOf(info, payer)).toBe(0n)
  })

  it('refuses before signing anything: eip2612 off, a token without permit, or past the spend policy', async () => {
    for (const [options, code] of [
      [{ eip2612: false }, 'permit2-allowance'],
      [{ token: 'eip3009' }, 'eip2612-nonce'],
    ] as const) {
      const { info, server, client, sent, signed, payTo } = setup(8, options)
      const before = await balance(info, payTo, info.eip3009Token)
      const failure = await client.fetch(url).catch((error: unknown) => error)
      expect(failure).toBeInstanceOf(PaymentFailedError)
      expect((failure as PaymentFailedError).code).toBe(code)
      expect(signed).toHaveLength(0)
      expect(sent).toHaveLength(0)
      expect(server.runs()).toBe(0)
      expect(await balance(info, payTo, info.eip3009Token)).toBe(before)
    }
    const { client, sent, signed, server } = setup(8, { policy: { maxAmount: 999n } })
    await expect(client.fetch(url)).rejects.toThrow(/exceeds the per-request maximum 999/)
    expect(signed).toHaveLength(0)
    expect(sent).toHaveLength(0)
    expect(server.runs()).toBe(0)
  })

  it('without a chain reader it signs no permit (as @x402/evm without readContract); the x402 server answers 412', async () => {
    const { info, server, client, sent, signed, payer } = setup(8, { reader: false })
    const nonce = await nonceOf(info, payer)
    const response = await client.fetch(url)
    expect(response.status).toBe(412)
    expect(signed.map((entry) => entry.primaryType)).toEqual(['PermitWitnessTransferFrom'])
    expect((Wire.decode(sent[0]!) as Document).extensions!.eip2612GasSponsoring!.info.from).toBeUndefined()
    expect(server.runs()).toBe(0)
    expect(await nonceOf(info, payer)).toBe(nonce)
  })
})

describe.skipIf(reason)('x402 EIP-2612 gas sponsoring, our client paying our server', () => {
  it('pays once through the permit; the server checked it and its facilitator submitted it', async () => {
    const info = devnet.info
    const fac = facilitator(info, 5)
    const payTo = info.accounts[payee]!.address
    const server = createServer({
      realm: 'localhost',
      secrets: ['x402-compat-test-secret-0123456789abcdef'],
      methods: [
        chargeServer({
          chainId: info.chainId,
          currency: info.eip2612Token,
          recipient: payTo,
          domain: domainOf(info),
          facilitator: fac.client,
          client: read(info),
          // MPP's own Permit2 only: the x402 route then offers x402's Permit2 requirement alone.
          credentialTypes: ['permit2'],
          wallet: walletOf(info, 6),
          x402Permit2: true,
          eip2612: true,
        }),
      ],
    })
    const handler = dualStack(server, { maxTimeoutSeconds: 120 }).protect(
      { offers: [{ method: 'evm', request: { amount: '1000' } }] },
      () => new Response('paid content'),
    )
    const payer = privateKeyToAccount(info.accounts[1]!.privateKey)
    // Payer 1 paid the x402 stack above: its allowance is spent (0) and its nonce is 1.
    expect(await allowance(info, payer.address)).toBe(0n)
    const sent: string[] = []
    const client = createClient({
      methods: [charge({ account: payer, client: read(info) })],
      protocols: [x402({ decimals: { [info.eip2612Token]: 6 } })],
      fetch: asFetch(async (request) => {
        const header = request.headers.get(Wire.headers.paymentSignature)
        if (header) sent.push(header)
        return handler(request)
      }),
    })
    const before = await balance(info, payTo)
    const response = await client.fetch(url)
    expect(response.status, await response.clone().text()).toBe(200)
    expect(fac.counts.settle).toBe(1)
    const document = Wire.decode(sent[0]!) as Document
    expect((document.accepted.extra as { assetTransferMethod?: string }).assetTransferMethod).toBe('permit2')
    expect(document.extensions!.eip2612GasSponsoring!.info).toMatchObject({ nonce: '1', amount: '1000' })
    const settled = Wire.decode(response.headers.get(Wire.headers.paymentResponse)!)
    expect((await settlementOf(info, settled.transaction as Hex)).call.functionName).toBe('settleWithPermit')
    expect((await balance(info, payTo)) - before).toBe(1000n)
    expect(await nonceOf(info, payer.address)).toBe(2n)
  })
})

/** `r`, `s` and the parity of a 65-byte signature. */
function parseRsv(signature: Hex) {
  return {
    r: `0x${signature.slice(2, 66)}` as Hex,
    s: `0x${signature.slice(66, 130)}` as Hex,
    yParity: Number.parseInt(signature.slice(130, 132), 16) - 27,
  }
}

import { Challenge, Credential } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import { erc20Abi, maxUint256 } from 'viem'
import type { TempoDevnetInfo } from '../../devnet/src/tempo/index.js'
import type { CredentialType } from '../src/Methods.js'
import * as Permit2 from '../src/Permit2.js'
import { charge, type Facilitator, type Reader, type Wallet } from '../src/server/index.js'
import { walletOf } from './peers.js'

// What the native `evm` server tests run: the server they call in-process, and what they send to it.

/** The URL the tests' handlers are called with. */
export const url = 'http://localhost/paid'

/** The first challenge of an unpaid request. */
export async function challengeOf(handler: (request: Request) => Promise<Response>) {
  const response = await handler(new Request(url))
  return Challenge.parseAll(response.headers.get('www-authenticate')!)[0]!
}

/** The handler's answer to `payload` presented with `challenge` (and `source` when given). */
export const send = (
  handler: (request: Request) => Promise<Response>,
  challenge: Challenge.Challenge,
  payload: unknown,
  source?: string,
) =>
  handler(
    new Request(url, {
      headers: {
        authorization: Credential.format({
          challenge,
          payload: payload as never,
          ...(source ? { source } : {}),
        }),
      },
    }),
  )

/**
 * An mppkit server selling the native `evm` charge (900 of the devnet's EIP-3009 token to dev account 6,
 * settled by dev account 7's wallet unless `wallet` or `facilitator` says otherwise) and its protected
 * handler, counting the handler's runs.
 */
export function nativeServer(
  info: TempoDevnetInfo,
  types: CredentialType[],
  options: { wallet?: Wallet; client?: Reader; facilitator?: Facilitator } = {},
) {
  const payTo = info.accounts[6]!.address
  const server = createServer({
    realm: 'localhost',
    secrets: ['x402-compat-test-secret-0123456789abcdef'],
    methods: [
      charge({
        chainId: info.chainId,
        currency: info.eip3009Token,
        recipient: payTo,
        credentialTypes: types,
        domain: { name: info.eip3009.name, version: info.eip3009.version },
        ...(options.facilitator
          ? { facilitator: options.facilitator }
          : { wallet: options.wallet ?? walletOf(info, 7) }),
        ...(options.client ? { client: options.client } : {}),
      }),
    ],
  })
  let runs = 0
  const handler = server.protect({ offers: [{ method: 'evm', request: { amount: '900' } }] }, () => {
    runs++
    return new Response('paid content')
  })
  return { info, payTo, handler, runs: () => runs }
}

/**
 * Dev accounts `indices` approve Permit2 once (the spec's "one-time ERC-20 approve() to the Permit2
 * contract"); the reason to skip the Permit2 tests instead, when the node has no Permit2 at its canonical
 * address (printed).
 */
export async function approvePermit2(info: TempoDevnetInfo, indices: number[]): Promise<string | undefined> {
  const code = await walletOf(info, 0).getCode({ address: Permit2.permit2Address })
  if (!code || code === '0x') {
    const reason = 'Permit2 is not deployed at its canonical address on this node'
    console.warn(`[skip] ${reason}`)
    return reason
  }
  for (const index of indices) {
    const wallet = walletOf(info, index)
    const hash = await wallet.writeContract({
      address: info.eip3009Token,
      abi: erc20Abi,
      functionName: 'approve',
      args: [Permit2.permit2Address, maxUint256],
      gas: 100_000n,
    })
    await wallet.waitForTransactionReceipt({ hash })
  }
  return undefined
}

import { Challenge } from '@mppkit/core'
import { create as createClient, PaymentFailedError, PolicyError } from '@mppkit/core/client'
import { type Address, erc20Abi } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { chargeClient } from '../src/client/index.js'
import { rpcProxy } from './helpers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

let devnet: TempoDevnet

const balance = (token: Address, owner: Address) =>
  tempoClients(devnet.info).publicClient.readContract({
    address: token,
    abi: erc20Abi,
    functionName: 'balanceOf',
    args: [owner],
  })

describe.skipIf(!!reason)('tempo/charge push, sent but its answer lost', () => {
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 3 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  it('stays booked against the budget: the retry is refused before a second transfer', async () => {
    const { info } = devnet
    const recipient = info.accounts[0]!.address
    // A 402 whose challenge asks 1000 base units of PathUSD to the recipient; no server needed, the
    // client never gets as far as sending a credential.
    const challenge: Challenge.Challenge = {
      id: 'ch_push_lost',
      realm: 'tempo.test',
      method: 'tempo',
      intent: 'charge',
      request: {
        amount: '1000',
        currency: info.tokens.pathUsd,
        recipient,
        methodDetails: { chainId: info.chainId, supportedModes: ['push'] },
      },
    }
    const api = (async () =>
      new Response(null, {
        status: 402,
        headers: { 'www-authenticate': Challenge.format(challenge) },
      })) as typeof fetch
    // The node receives the transaction, but its answer is lost on the way back.
    const proxy = await rpcProxy(info.rpcUrl)
    try {
      proxy.set('lose-send')
      const client = createClient({
        methods: [
          chargeClient({
            account: privateKeyToAccount(info.accounts[1]!.privateKey),
            rpcUrl: proxy.url,
            chainId: info.chainId,
            mode: 'push',
            timeout: 5_000,
          }),
        ],
        policy: { budget: { [info.tokens.pathUsd]: 1000n } },
        fetch: api,
      })
      const before = await balance(info.tokens.pathUsd, recipient)
      const error = await client.fetch('https://tempo.test/r').catch((e) => e)
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect(error.mayHaveSettled).toBe(true)
      expect(client.ledger.spent(info.tokens.pathUsd)).toBe(1000n)
      // The transfer did go through: the booking it kept is real money.
      await expect
        .poll(() => balance(info.tokens.pathUsd, recipient), { timeout: 5_000 })
        .toBe(before + 1000n)
      const requests = proxy.requests()
      const retry = await client.fetch('https://tempo.test/r').catch((e) => e)
      expect(retry).toBeInstanceOf(PolicyError)
      expect(retry.reason).toBe('budget')
      // Refused before anything reached the node again.
      expect(proxy.requests()).toBe(requests)
      expect(await balance(info.tokens.pathUsd, recipient)).toBe(before + 1000n)
    } finally {
      await proxy.close()
    }
  })
})

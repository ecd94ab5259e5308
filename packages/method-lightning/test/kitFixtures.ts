import type { Store } from '@mppkit/core'
import type { DescribeMethodOptions, MethodFixture, MethodFlow } from '@mppkit/core/testing'
import { expect } from 'vitest'
import { type LightningNodeInfo, startLightning } from '../../devnet/src/lightning/index.js'
import { chargeClient, type SessionClient, sessionClient } from '../src/client/index.js'
import { chargeServer, sessionServer } from '../src/server/index.js'
import { lndFor, nodeProxy, waitUntilReachable } from './helpers.js'

// Fixtures of the conformance kit (`describeMethod`) for lightning charge and session on a fresh devnet
// Lightning simulator each. The server reaches its node through a TCP proxy the outage case turns off.

const chargeAmount = 100

/** Two nodes the kit runs on: the payee (the server's) and the payer (the client's). */
export type KitNodes = {
  payee: Pick<LightningNodeInfo, 'socket' | 'cert' | 'macaroon'>
  payer: Pick<LightningNodeInfo, 'socket' | 'cert' | 'macaroon'>
  network: 'regtest' | 'signet' | 'mainnet'
  stop(): Promise<void>
}

/** A fresh devnet LND simulator (the default). */
export async function simulatorNodes(): Promise<KitNodes> {
  const network = await startLightning()
  return { ...network.info.nodes, network: 'regtest', stop: () => network.stop() }
}

type KitExtra = {
  skip?: string | undefined
  store?: () => Store | Promise<Store>
  nodes?: () => Promise<KitNodes>
}

/** Kit options for lightning/charge: every case, and an outage that counts sats the payee received. */
export function lightningChargeKit(
  name: string,
  { nodes: startNodes = simulatorNodes, ...extra }: KitExtra = {},
): DescribeMethodOptions {
  return {
    name,
    concurrency: 8,
    ...extra,
    async setup(): Promise<MethodFixture> {
      const nodes = await startNodes()
      const proxy = await nodeProxy(nodes.payee.socket)
      const serverLnd = lndFor(nodes.payee, proxy.socket)
      return {
        server: chargeServer({ lnd: serverLnd }),
        client: () => chargeClient({ lnd: lndFor(nodes.payer), network: nodes.network }),
        offer: { method: 'lightning', request: { amount: String(chargeAmount) } },
        problems: {
          tamperedId: 'lightning/unknown-challenge',
          replay: 'lightning/unknown-challenge',
          expired: 'lightning/expired-invoice',
          malformed: 'lightning/malformed-credential',
          // The BOLT11 invoice fixes the amount: a client cannot pay another one, and this client refuses a
          // request whose amount differs from its invoice (charge.test.ts, chargeClient).
          wrongAmount: false,
        },
        malformedPayload: { preimage: 'not-hex' },
        outage: {
          start: () => proxy.down(),
          stop: async () => {
            proxy.up()
            await waitUntilReachable(serverLnd)
          },
          // Without `settlements` the kit counts the server's successful settles (credentials are paid
          // before they are submitted, so the node's balance cannot tell a second settlement).
        },
        teardown: async () => {
          await proxy.close()
          await nodes.stop()
        },
      }
    },
  }
}

/** The session flow: open → use ×3 → top up → close, each receipt on one session and the refund adding up. */
const sessionFlow: MethodFlow = {
  name: 'session: open → use ×3 → top up → close',
  sameReference: true,
  steps: [
    { name: 'open' },
    { name: 'use' },
    { name: 'use' },
    { name: 'use' },
    {
      name: 'top up',
      run: ({ client, url }) => (client as SessionClient).topUp(url),
    },
    {
      name: 'close',
      run: ({ client, url }) => (client as SessionClient).close(url),
      // 10 + 10 deposited, 4 requests served at 1 sat.
      receipt: { refundSats: 16, refundStatus: 'succeeded' },
    },
  ],
  async verify({ receipts, settles }) {
    expect(settles).toBe(6)
    expect(receipts.map((r) => r.reference)).toEqual(Array(6).fill(receipts[0]!.reference))
  },
}

/** Kit options for lightning/session: every case, the session flow, and a node outage on open. */
export function lightningSessionKit(
  name: string,
  { nodes: startNodes = simulatorNodes, ...extra }: KitExtra = {},
): DescribeMethodOptions {
  return {
    name,
    concurrency: 8,
    flows: [sessionFlow],
    ...extra,
    async setup(): Promise<MethodFixture> {
      const nodes = await startNodes()
      const proxy = await nodeProxy(nodes.payee.socket)
      const serverLnd = lndFor(nodes.payee, proxy.socket)
      return {
        // As configured for production: `replaysConsumed` on (the spec's idempotency rule), so the kit's
        // replay, concurrency and outage cases expect an identical resubmission to get the original response.
        server: sessionServer({ lnd: serverLnd, depositSats: 10 }),
        client: ({ fetch }) => sessionClient({ lnd: lndFor(nodes.payer), network: nodes.network, fetch }),
        policy: { maxDeposit: { sat: 1_000n } },
        offer: { method: 'lightning', intent: 'session', request: { amount: '1', unitType: 'request' } },
        problems: {
          tamperedId: 'lightning/unknown-challenge',
          expired: 'lightning/challenge-expired',
          malformed: 'lightning/malformed-credential',
          // The deposit invoice fixes what is paid; the echoed challenge is HMAC-bound.
          wrongAmount: false,
        },
        malformedPayload: { action: 'bearer', sessionId: 'not-hex', preimage: 'not-hex' },
        outage: {
          start: () => proxy.down(),
          stop: async () => {
            proxy.up()
            await waitUntilReachable(serverLnd)
          },
        },
        teardown: async () => {
          await proxy.close()
          await nodes.stop()
        },
      }
    },
  }
}

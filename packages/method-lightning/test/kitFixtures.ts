import type { Store } from '@mppkit/core'
import type { DescribeMethodOptions, MethodFixture } from '@mppkit/core/testing'
import { startLightning } from '../../devnet/src/lightning/index.js'
import { chargeClient } from '../src/client/index.js'
import { chargeServer } from '../src/server/index.js'
import { lndFor, nodeProxy, waitUntilReachable } from './helpers.js'

// Fixtures of the conformance kit (`describeMethod`) for lightning charge and session on a fresh devnet
// Lightning simulator each. The server reaches its node through a TCP proxy the outage case turns off.

const chargeAmount = 100

/** Kit options for lightning/charge: every case, and an outage that counts sats the payee received. */
export function lightningChargeKit(
  name: string,
  extra: { skip?: string | undefined; store?: () => Store | Promise<Store> } = {},
): DescribeMethodOptions {
  return {
    name,
    concurrency: 8,
    ...extra,
    async setup(): Promise<MethodFixture> {
      const network = await startLightning()
      const proxy = await nodeProxy(network.info.nodes.payee.socket)
      const serverLnd = lndFor(network.info.nodes.payee, proxy.socket)
      return {
        server: chargeServer({ lnd: serverLnd }),
        client: () => chargeClient({ lnd: lndFor(network.info.nodes.payer), network: 'regtest' }),
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
          await network.stop()
        },
      }
    },
  }
}

import { describeMethod } from '@mppkit/core/testing'
import { readExternalNodes } from '../../devnet/src/external.js'
import { type KitNodes, lightningChargeKit, lightningSessionKit } from './kitFixtures.js'

// The same conformance suites on real LND nodes, when configured: MPPKIT_LND_SOCKET, _CERT, _MACAROON
// (the payee, i.e. the merchant's node) and MPPKIT_LND_PAYER_SOCKET, _CERT, _MACAROON (a node with a
// channel to it), a cert or macaroon inline (base64 / hex) or as a file path; MPPKIT_LIGHTNING_NETWORK
// (default regtest). The payee's macaroon must allow paying (session refunds): admin.macaroon.
let reason: string | undefined
let nodes: KitNodes | undefined
try {
  const external = readExternalNodes(process.env).lightning
  if (!external)
    reason = 'no real LND configured (set MPPKIT_LND_SOCKET, _CERT, _MACAROON and MPPKIT_LND_PAYER_*)'
  else if (!external.payer) reason = 'MPPKIT_LND_PAYER_SOCKET, _CERT and _MACAROON are needed to pay'
  else {
    const network = (process.env.MPPKIT_LIGHTNING_NETWORK ?? 'regtest') as KitNodes['network']
    nodes = { payee: external.payee, payer: external.payer, network, stop: async () => {} }
  }
} catch (error) {
  reason = `the LND configuration is invalid: ${(error as Error).message}`
}

const real = async () => nodes!
describeMethod(lightningChargeKit('lightning/charge (real LND)', { skip: reason, nodes: real }))
describeMethod(lightningSessionKit('lightning/session (real LND)', { skip: reason, nodes: real }))

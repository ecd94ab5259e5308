// The Lightning network an example runs on: the one `npm run devnet` started, when its JSON line is given
// in MPPKIT_DEVNET_INFO, otherwise a fresh embedded LND simulator (stopped by `stop()`). Either way two
// LND-compatible nodes: `payee` (the server's) and `payer` (the client's).
//
//   npm run devnet > devnet.json            # terminal 1 (stays up)
//   MPPKIT_DEVNET_INFO="$(grep '^{' devnet.json)" node examples/lightning-charge/run.mjs
import { readDevnetInfo, startLightning } from '@mppkit/devnet'

export async function lightningNodes() {
  const shared = readDevnetInfo()?.lightning
  if (shared) return { nodes: shared.nodes, source: 'npm run devnet', stop: async () => {} }
  const network = await startLightning()
  return { nodes: network.info.nodes, source: 'embedded LND simulator', stop: () => network.stop() }
}

/** The environment variables the examples read a node from: `<prefix>_SOCKET`, `_CERT`, `_MACAROON`. */
export function lndEnv(prefix, node) {
  return {
    [`${prefix}_SOCKET`]: node.socket,
    [`${prefix}_CERT`]: node.cert,
    [`${prefix}_MACAROON`]: node.macaroon,
  }
}

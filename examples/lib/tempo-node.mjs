// @ts-check
// The Tempo node an example runs on: the one `npm run devnet` started, when its JSON line is given in
// MPPKIT_DEVNET_INFO, otherwise a fresh embedded anvil --network tempo (stopped by `stop()`).
//
//   npm run devnet > devnet.json            # terminal 1 (stays up)
//   MPPKIT_DEVNET_INFO="$(grep '^{' devnet.json)" node examples/tempo-charge/run.mjs
import { readDevnetInfo, startTempo } from '@mppkit/devnet'

export async function tempoNode() {
  const shared = readDevnetInfo()?.tempo
  if (shared) return { info: shared, source: 'npm run devnet', stop: async () => {} }
  const node = await startTempo()
  return {
    info: node.info,
    source: `embedded anvil, ready in ${Math.round(node.timings.totalMs)} ms`,
    stop: () => node.stop(),
  }
}

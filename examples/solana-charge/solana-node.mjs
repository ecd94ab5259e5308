// The Solana node an example runs on: the one `npm run devnet` started, when its JSON line is given in
// MPPKIT_DEVNET_INFO, otherwise a fresh embedded devnet SVM (stopped by `stop()`).
//
//   npm run devnet > devnet.json            # terminal 1 (stays up)
//   MPPKIT_DEVNET_INFO="$(grep '^{' devnet.json)" node examples/solana-charge/run.mjs
import { readDevnetInfo, startSolana } from '@mppkit/devnet'

export async function solanaNode() {
  const shared = readDevnetInfo()?.solana
  if (shared?.rpcUrl && shared.payer) return { info: shared, source: 'npm run devnet', stop: async () => {} }
  // Transactions go processed → confirmed (1 slot) → finalized (8 slots) under a 50 ms slot clock.
  const node = await startSolana({ commitment: { confirmed: 1, finalized: 8 }, slotTimeMs: 50 })
  return { info: node.info, source: 'embedded devnet SVM', stop: () => node.stop() }
}

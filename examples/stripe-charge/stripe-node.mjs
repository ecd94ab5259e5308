// @ts-check
// The Stripe simulator an example runs on: the one `npm run devnet` started, when its JSON line is given
// in MPPKIT_DEVNET_INFO, otherwise a fresh embedded simulator (stopped by `stop()`).
//
//   npm run devnet > devnet.json            # terminal 1 (stays up)
//   MPPKIT_DEVNET_INFO="$(grep '^{' devnet.json)" node examples/stripe-charge/run.mjs
import { readDevnetInfo, startStripe } from '@mppkit/devnet'

export async function stripeNode() {
  const shared = readDevnetInfo()?.stripe
  if (shared?.source === 'embedded') return { info: shared, source: 'npm run devnet', stop: async () => {} }
  const node = await startStripe()
  return { info: node.info, source: 'embedded simulator', stop: () => node.stop() }
}

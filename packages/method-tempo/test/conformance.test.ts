import { describeMethod } from '@mppkit/core/testing'
import { tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { tempoChargeKit, tempoSessionKit } from './kitFixtures.js'

// The conformance kit (@mppkit/core/testing describeMethod) on anvil, over the server's MemoryStore.
// packages/store-redis/test/conformance-tempo.test.ts runs the same kit over Redis.
const skip = tempoUnavailableReason()

describeMethod(tempoChargeKit('tempo/charge (anvil, pull)', { skip }))
describeMethod(tempoSessionKit('tempo/session (anvil, v1 escrow)', { skip }))

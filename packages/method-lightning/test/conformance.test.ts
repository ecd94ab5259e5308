import { describeMethod } from '@mppkit/core/testing'
import { lightningChargeKit, lightningSessionKit } from './kitFixtures.js'

// The conformance kit (@mppkit/core/testing describeMethod) on the devnet Lightning simulator (LND's
// gRPC protocol, driven by the unmodified `lightning` package), over the server's MemoryStore.
describeMethod(lightningChargeKit('lightning/charge (devnet LND)'))
describeMethod(lightningSessionKit('lightning/session (devnet LND)'))

import { describeMethod } from '@mppkit/core/testing'
import { solanaChargeKit } from './kitFixtures.js'

// The conformance kit (@mppkit/core/testing describeMethod) on the devnet SVM, over the server's MemoryStore.
describeMethod(solanaChargeKit('solana/charge (devnet SVM, SPL pull)'))
describeMethod(solanaChargeKit('solana/charge (devnet SVM, SPL pull, fee-sponsored)', { sponsored: true }))
describeMethod(solanaChargeKit('solana/charge (devnet SVM, SPL push)', { mode: 'push' }))

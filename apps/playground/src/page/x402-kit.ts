// What @mppkit/x402-compat's Solana payer (packages/x402-compat/src/svm/Client.ts) uses of @solana/kit,
// for the page's bundle. x402-compat loads the kit with a dynamic import (it is an optional peer there),
// which would keep every export of the kit in the bundle; build.mjs resolves that one import to this
// module, so only these are bundled (and shared with the Solana views). test/x402-kit.test.ts checks
// that this list covers every `kit.` member Client.ts reads.
export {
  AccountRole,
  address,
  appendTransactionMessageInstructions,
  createTransactionMessage,
  getAddressEncoder,
  getBase64EncodedWireTransaction,
  getProgramDerivedAddress,
  partiallySignTransactionMessageWithSigners,
  pipe,
  setTransactionMessageFeePayer,
  setTransactionMessageLifetimeUsingBlockhash,
} from '@solana/kit'

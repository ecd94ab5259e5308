import { nativeBinding } from '../src/internal/secp256k1.js'

/**
 * The ECDSA engines the voucher tests run on: both, or only `noble` (with a printed reason) where the
 * optional native binding cannot load.
 */
export const backends: ('libsecp256k1' | 'noble')[] = nativeBinding() ? ['libsecp256k1', 'noble'] : ['noble']
if (!nativeBinding())
  console.warn(
    `[skip] libsecp256k1 voucher tests: the optional secp256k1 binding cannot load on ${process.platform}-${process.arch}`,
  )

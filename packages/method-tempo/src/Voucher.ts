// `@mppkit/core/client`, not the root entry: the client path (Voucher.sign) is bundled for browsers.
import { ConfigurationError, ParseError } from '@mppkit/core/client'
import type { Address, Hex } from 'viem'
import { compareWord, decodeHex, encodeHex, isZeroWord, writeWord } from './internal/bytes.js'
import { keccak256 } from './internal/keccak.js'
import {
  type Backend,
  defaultBackend,
  nativeBinding,
  nativeCheck,
  nobleCheck,
  type SignerCheck,
} from './internal/secp256k1.js'

/**
 * A session voucher: the payer's EIP-712 authorization of a cumulative amount on one channel.
 *
 * @example
 * ```ts
 * const voucher: Voucher.Voucher = { channelId, cumulativeAmount: 250_000n, signature }
 * ```
 * @see draft-tempo-session-00 §"Voucher Signing Format"
 */
export type Voucher = { channelId: Hex; cumulativeAmount: bigint; signature: Hex }

/** `v1` (contract escrow, `uint128`) or `v2` (TIP-20 channel reserve precompile, `uint96`). */
export type Protocol = 'v1' | 'v2'

const domainNames: Record<Protocol, string> = { v1: 'Tempo Stream Channel', v2: 'TIP20 Channel Reserve' }
const encoder = new TextEncoder()
const hash = (bytes: Uint8Array) => keccak256(bytes)
const typeHashes: Record<Protocol, Uint8Array> = {
  v1: hash(encoder.encode('Voucher(bytes32 channelId,uint128 cumulativeAmount)')),
  v2: hash(encoder.encode('Voucher(bytes32 channelId,uint96 cumulativeAmount)')),
}
const domainTypeHash = hash(
  encoder.encode('EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)'),
)
const maxAmount: Record<Protocol, bigint> = { v1: (1n << 128n) - 1n, v2: (1n << 96n) - 1n }

const separators = new Map<string, Uint8Array>()

/**
 * The EIP-712 domain separator of an escrow (cached per escrow, chain and protocol; a bounded cache).
 *
 * @example
 * ```ts
 * Voucher.domainSeparator({ chainId: 4217, escrow, protocol: 'v1' })
 * ```
 * @see draft-tempo-session-00 §"Domain Separator"
 */
export function domainSeparator(parameters: {
  chainId: number
  escrow: Address
  protocol?: Protocol
}): Uint8Array {
  const protocol = parameters.protocol ?? 'v1'
  const key = `${protocol}:${parameters.chainId}:${parameters.escrow.toLowerCase()}`
  let separator = separators.get(key)
  if (!separator) {
    const buffer = new Uint8Array(160)
    buffer.set(domainTypeHash, 0)
    buffer.set(hash(encoder.encode(domainNames[protocol])), 32)
    buffer.set(hash(encoder.encode('1')), 64)
    writeWord(BigInt(parameters.chainId), buffer, 96)
    if (!/^0x[0-9a-fA-F]{40}$/.test(parameters.escrow) || !decodeHex(parameters.escrow, 2, buffer, 140))
      throw new ParseError('Voucher: the escrow is not a 20-byte address.')
    separator = hash(buffer)
    if (separators.size >= 1024) separators.delete(separators.keys().next().value as string)
    separators.set(key, separator)
  }
  return separator
}

/**
 * The EIP-712 signing hash of a voucher: `keccak256(0x1901 ‖ domainSeparator ‖ structHash)`.
 *
 * @example
 * ```ts
 * const digest = Voucher.digest({ chainId, escrow, channelId, cumulativeAmount: 100n })
 * ```
 * @see draft-tempo-session-00 §"Signing Procedure"
 */
export function digest(parameters: {
  chainId: number
  escrow: Address
  channelId: Hex
  cumulativeAmount: bigint
  protocol?: Protocol
}): Uint8Array {
  const protocol = parameters.protocol ?? 'v1'
  const { channelId, cumulativeAmount } = parameters
  if (cumulativeAmount < 0n || cumulativeAmount > maxAmount[protocol])
    throw new ParseError(`Voucher: the amount is outside uint${protocol === 'v1' ? 128 : 96}.`)
  // structHash = keccak256(typeHash ‖ channelId ‖ uint(cumulativeAmount)), written into reused buffers.
  structBuffer.set(typeHashes[protocol], 0)
  if (channelId.length !== 66 || !channelId.startsWith('0x') || !decodeHex(channelId, 2, structBuffer, 32))
    throw new ParseError('Voucher: the channel id is not 32 bytes of hex.')
  writeWord(cumulativeAmount, structBuffer, 64)
  signingBuffer.set(domainSeparator({ chainId: parameters.chainId, escrow: parameters.escrow, protocol }), 2)
  keccak256(structBuffer, structHash)
  signingBuffer.set(structHash, 34)
  return keccak256(signingBuffer)
}
const structBuffer = new Uint8Array(96)
const structHash = new Uint8Array(32)
const signingBuffer = new Uint8Array(66)
signingBuffer[0] = 0x19
signingBuffer[1] = 0x01

/**
 * The voucher's typed data for a viem account's `signTypedData`.
 *
 * @example
 * ```ts
 * const signature = await account.signTypedData(Voucher.typedData({ chainId, escrow, channelId, cumulativeAmount }))
 * ```
 * @see draft-tempo-session-00 §"Type Definitions"
 */
export function typedData(parameters: {
  chainId: number
  escrow: Address
  channelId: Hex
  cumulativeAmount: bigint
  protocol?: Protocol
}) {
  const protocol = parameters.protocol ?? 'v1'
  return {
    domain: {
      name: domainNames[protocol],
      version: '1',
      chainId: parameters.chainId,
      verifyingContract: parameters.escrow,
    },
    types: {
      Voucher: [
        { name: 'channelId', type: 'bytes32' },
        { name: 'cumulativeAmount', type: protocol === 'v1' ? 'uint128' : 'uint96' },
      ],
    },
    primaryType: 'Voucher' as const,
    message: { channelId: parameters.channelId, cumulativeAmount: parameters.cumulativeAmount },
  }
}

/**
 * Signs a voucher with a viem local account.
 *
 * @example
 * ```ts
 * const signature = await Voucher.sign(account, { chainId, escrow, channelId, cumulativeAmount: 100n })
 * ```
 */
export async function sign(
  account: { signTypedData(parameters: never): Promise<Hex> },
  parameters: {
    chainId: number
    escrow: Address
    channelId: Hex
    cumulativeAmount: bigint
    protocol?: Protocol
  },
): Promise<Hex> {
  return account.signTypedData(typedData(parameters) as never)
}

/** Why {@link verify} refused a voucher. */
export type Failure =
  | 'malformed-signature'
  | 'malformed-voucher'
  | 'high-s'
  | 'amount-out-of-range'
  | 'signer-mismatch'

// secp256k1's group order n and ⌊n/2⌋, big-endian.
const order = new Uint8Array(32)
decodeHex('fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141', 0, order, 0)
const halfOrder = new Uint8Array(32)
decodeHex('7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0', 0, halfOrder, 0)

/**
 * Splits a 65-byte `r‖s‖v` (v 27/28) or 64-byte EIP-2098 signature into `out` (`r‖s`, the EIP-2098
 * parity bit cleared) and returns the recovery id and whether `s` is high; undefined unless `r` and `s`
 * are in `[1, n)` and v is 27 or 28.
 */
function splitSignature(signature: string, out: Uint8Array): { recid: number; high: boolean } | undefined {
  const length = signature.length
  if ((length !== 132 && length !== 130) || !signature.startsWith('0x')) return undefined
  if (!decodeHex(signature.slice(0, 130), 2, out, 0)) return undefined
  let recid: number
  if (length === 132) {
    const high = decodeHex(signature, 130, vByte, 0)
    const v = vByte[0]!
    if (!high) return undefined
    // "Accepted signature formats: 65-byte `(r, s, v)` format where `v` is 27 or 28; 64-byte EIP-2098
    // compact format." A v of 0/1 recovers off chain, but the escrow's ecrecover refuses it: a voucher
    // served on it could never be settled (and would revert every settlement batch it is in).
    if (v === 27 || v === 28) recid = v - 27
    else return undefined
  } else {
    recid = out[32]! >> 7
    out[32]! &= 0x7f
  }
  if (isZeroWord(out, 0) || compareWord(out, 0, order) >= 0) return undefined
  if (isZeroWord(out, 32) || compareWord(out, 32, order) >= 0) return undefined
  return { recid, high: compareWord(out, 32, halfOrder) > 0 }
}
const vByte = new Uint8Array(1)

/**
 * Which ECDSA engine a verifier created now with default options uses: `libsecp256k1` (the optional
 * native `secp256k1` binding loaded) or `noble` (pure JS: the binding is unavailable, or
 * `MPPKIT_SECP256K1=js` is set).
 *
 * @example
 * ```ts
 * console.log(`vouchers verified with ${Voucher.verifierBackend()}`)
 * ```
 * @see draft-tempo-session-00 §"Voucher Verification"
 */
export function verifierBackend(): Backend {
  return defaultBackend()
}

/**
 * A voucher verifier: canonical signatures only (low-s, `r` and `s` in `[1, n)`, v 27/28), the
 * exact EIP-712 digest of the protocol, and the signer's key recovered with the signature's own
 * recovery id (as the escrow's `ecrecover` will) and compared with the expected signer from chain state.
 * Runs on libsecp256k1 when its binding loads, else on pure-JS noble (see {@link verifierBackend}).
 *
 * Signer keys are cached in a least-recently-used set of `maxSigners` (default 256); a signer pushed
 * out is simply recovered again on its next voucher.
 *
 * The last voucher found valid on each channel is remembered (at most `maxChannels`, default 4,096,
 * least recently used first out): the same voucher presented again (same chain, escrow, channel,
 * amount, signature string and expected signer) is valid without a second ECDSA recovery. The result
 * of a check is a pure function of those inputs, so nothing is weakened; a session client that
 * pre-authorizes several requests resends its voucher, and the spec's idempotent resubmissions
 * ("Resubmitting a voucher with the same `cumulativeAmount` … MUST return 200 OK") cost a few
 * comparisons instead of a signature recovery.
 *
 * @example
 * ```ts
 * const verifier = Voucher.createVerifier()
 * verifier.verify({ chainId, escrow, voucher, signer }) // undefined when valid, else a Failure
 * ```
 * @see draft-tempo-session-00 §"Voucher Verification", §"Signature Malleability"
 */
export function createVerifier(
  options: { maxSigners?: number; maxChannels?: number; backend?: Backend } = {},
) {
  const maxSigners = Math.max(0, options.maxSigners ?? 256)
  const maxChannels = Math.max(0, options.maxChannels ?? 4_096)
  /** channel id → the key of the last voucher found valid on it (see the doc above). */
  const lastValid = new Map<
    string,
    { chainId: number; escrow: string; protocol: Protocol; amount: bigint; signature: string; signer: string }
  >()
  const backend = options.backend ?? defaultBackend()
  let checker: SignerCheck
  if (backend === 'libsecp256k1') {
    const binding = nativeBinding()
    if (!binding)
      throw new ConfigurationError(
        'Voucher: the libsecp256k1 backend was asked for, but the optional secp256k1 binding cannot load here.',
      )
    checker = nativeCheck(binding, maxSigners)
  } else checker = nobleCheck(maxSigners)
  const signatureBytes = new Uint8Array(64)

  const verify = (parameters: {
    chainId: number
    escrow: Address
    voucher: Voucher
    /** The expected signer, from chain state: `authorizedSigner`, or the payer when it is zero. */
    signer: Address
    protocol?: Protocol
  }): Failure | undefined => {
    const { voucher } = parameters
    const protocol = parameters.protocol ?? 'v1'
    if (voucher.cumulativeAmount < 0n || voucher.cumulativeAmount > maxAmount[protocol])
      return 'amount-out-of-range'
    const signer = parameters.signer.toLowerCase()
    const channel = voucher.channelId.toLowerCase()
    const escrow = parameters.escrow.toLowerCase()
    const last = lastValid.get(channel)
    if (
      last !== undefined &&
      last.amount === voucher.cumulativeAmount &&
      last.signature === voucher.signature &&
      last.signer === signer &&
      last.escrow === escrow &&
      last.chainId === parameters.chainId &&
      last.protocol === protocol
    )
      return undefined
    const split = splitSignature(voucher.signature, signatureBytes)
    if (!split) return 'malformed-signature'
    // "Servers MUST reject signatures with `s` values exceeding this threshold"
    if (split.high) return 'high-s'
    let hashed: Uint8Array
    try {
      // Named fields, no object spread (V8's slow path on Node 20).
      hashed = digest({
        chainId: parameters.chainId,
        escrow: parameters.escrow,
        channelId: voucher.channelId,
        cumulativeAmount: voucher.cumulativeAmount,
        protocol,
      })
    } catch {
      return 'malformed-voucher'
    }
    if (!checker.check(signer, signatureBytes, split.recid, hashed)) return 'signer-mismatch'
    if (maxChannels > 0) {
      lastValid.delete(channel)
      if (lastValid.size >= maxChannels) lastValid.delete(lastValid.keys().next().value!)
      lastValid.set(channel, {
        chainId: parameters.chainId,
        escrow,
        protocol,
        amount: voucher.cumulativeAmount,
        signature: voucher.signature,
        signer,
      })
    }
    return undefined
  }
  return {
    verify,
    /** The ECDSA engine of this verifier. */
    backend,
    /** How many signer keys are cached now (at most `maxSigners`). */
    get cachedSigners() {
      return checker.size
    },
    /** How many channels' last valid voucher is remembered now (at most `maxChannels`). */
    get cachedVouchers() {
      return lastValid.size
    },
  }
}

/**
 * Parses a 65-byte `r‖s‖v` (v 27/28) or 64-byte EIP-2098 signature: undefined unless `r` and
 * `s` are in `[1, n)` (a high `s` is returned as is; {@link createVerifier} refuses it).
 *
 * @example
 * ```ts
 * const { r, s, yParity } = Voucher.parseSignature(signature)!
 * ```
 * @see draft-tempo-session-00 §"Signature Malleability"
 */
export function parseSignature(signature: string): { r: bigint; s: bigint; yParity: number } | undefined {
  const bytes = new Uint8Array(64)
  const split = splitSignature(signature, bytes)
  if (!split) return undefined
  const hex = encodeHex(bytes, 0, 64)
  return { r: BigInt(`0x${hex.slice(0, 64)}`), s: BigInt(`0x${hex.slice(64)}`), yParity: split.recid }
}

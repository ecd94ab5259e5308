import { EventEmitter } from 'node:events'
import {
  address,
  getAddressEncoder,
  getTransactionDecoder,
  type Transaction,
  lamports as toLamports,
} from '@solana/kit'
import {
  FailedTransactionMetadata,
  LiteSVM,
  SimulatedTransactionInfo,
  type TransactionMetadata,
} from 'litesvm'
import { DevnetError } from '../errors.js'
import {
  isTokenProgram,
  readMintDecimals,
  readTokenAccount,
  type UiTokenAmount,
  uiTokenAmount,
} from './parse.js'
import { builtinPrograms, programs } from './programs.js'
import {
  describeTransactionError,
  type TransactionErrorJson,
  toTransactionErrorJson,
} from './transactionError.js'
import {
  type CompiledInstruction,
  decodeTransaction,
  fromBase58,
  toBase58,
  type WireTransaction,
} from './wire.js'

/**
 * A JSON-RPC error the node answers with (code and data as Agave sends them).
 *
 * @example
 * ```ts
 * throw new SolanaRpcError(-32602, 'Invalid param: not a Token account')
 * ```
 */
export class SolanaRpcError extends DevnetError {
  override name = 'SolanaRpcError'
  /** The JSON-RPC error code, e.g. -32002 for a failed preflight. */
  readonly rpcCode: number
  /** The JSON-RPC error `data` member. */
  readonly data: unknown
  constructor(rpcCode: number, message: string, data?: unknown) {
    super(message, { code: 'solana_rpc_error' })
    this.rpcCode = rpcCode
    this.data = data
  }
}

/** A token balance row of a transaction's meta. */
export type TokenBalance = {
  accountIndex: number
  mint: string
  owner: string
  programId: string
  uiTokenAmount: UiTokenAmount
}

/** An inner-instruction group of a transaction's meta. */
export type InnerInstructionGroup = {
  index: number
  instructions: (CompiledInstruction & { stackHeight: number })[]
}

/** Everything the node remembers about a landed transaction. */
export type RecordedTransaction = {
  signature: string
  slot: bigint
  blockTime: number
  transaction: WireTransaction
  accountKeys: string[]
  loadedAddresses: { writable: string[]; readonly: string[] }
  err: TransactionErrorJson | null
  fee: bigint
  logMessages: string[]
  preBalances: bigint[]
  postBalances: bigint[]
  preTokenBalances: TokenBalance[]
  postTokenBalances: TokenBalance[]
  innerInstructions: InnerInstructionGroup[]
  computeUnitsConsumed: bigint
  returnData: { programId: string; data: Uint8Array } | null
}

/** The outcome of a simulation, in the node's terms. */
export type SimulationResult = {
  err: TransactionErrorJson | null
  logs: string[]
  unitsConsumed: bigint
  fee: bigint
  returnData: { programId: string; data: Uint8Array } | null
  innerInstructions: InnerInstructionGroup[]
  accountKeys: string[]
  postAccounts: Map<string, { lamports: bigint; data: Uint8Array; owner: string; executable: boolean }>
}

/** Options of a {@link Ledger}. */
export type LedgerOptions = {
  /** Lamports per signature (Solana's fee rate). Default 5000, the cluster value. */
  lamportsPerSignature?: bigint
}

// Solana keeps a blockhash usable for 150 blocks: "MAX_PROCESSING_AGE".
const maxProcessingAge = 150n
const defaultComputeUnits = 200_000n
const builtinComputeUnits = 3_000n
const maxComputeUnits = 1_400_000n

const transactionDecoder = getTransactionDecoder()
const addressEncoder = getAddressEncoder()

/**
 * The native instance inside litesvm's `LiteSVM` wrapper (litesvm 1.5). The wrapper takes addresses and
 * transactions as @solana/kit values and converts them with kit's bigint base58 codecs on every call;
 * the node already holds the bytes, so its hot paths (accounts, balances, sending) call the native
 * methods with them directly. The results are the ones the wrapper would return.
 */
type NativeSvm = {
  getAccount(pubkey: Uint8Array): {
    executable(): boolean
    lamports(): bigint
    data(): Uint8Array
    owner(): Uint8Array
  } | null
  getBalance(pubkey: Uint8Array): bigint | null
  getSigverify(): boolean
  sendLegacyTransaction(bytes: Uint8Array): TransactionMetadata | FailedTransactionMetadata
  sendVersionedTransaction(bytes: Uint8Array): TransactionMetadata | FailedTransactionMetadata
  simulateLegacyTransaction(bytes: Uint8Array): unknown
  simulateVersionedTransaction(bytes: Uint8Array): unknown
}

function nativeOf(svm: LiteSVM): NativeSvm {
  const inner = (svm as unknown as { inner?: Record<string, unknown> }).inner
  const methods = [
    'getAccount',
    'getBalance',
    'getSigverify',
    'sendLegacyTransaction',
    'sendVersionedTransaction',
    'simulateLegacyTransaction',
    'simulateVersionedTransaction',
  ]
  if (!inner || methods.some((name) => typeof inner[name] !== 'function'))
    throw new DevnetError('this litesvm version has no native instance the node can use', {
      code: 'devnet_start_failed',
    })
  return inner as unknown as NativeSvm
}

/** The 32 bytes of an address; anything else is refused by kit's `address` exactly as before. */
function addressBytes(value: string): Uint8Array {
  if (typeof value === 'string' && value.length >= 32 && value.length <= 44) {
    try {
      const bytes = fromBase58(value)
      if (bytes.length === 32) return bytes
    } catch {
      // not base58: kit's error below
    }
  }
  return new Uint8Array(addressEncoder.encode(address(value)))
}

/**
 * Whether re-encoding a transaction through kit's codecs (what litesvm's wrapper does) gives back its
 * own bytes, so they can go to the native instance as they are: a one-byte signature count, distinct
 * signer keys, one per signature (kit keys signatures by address) and, when signatures are verified, none left empty
 * (kit's wrapper refuses those with its own error).
 */
function passesAsIs(transaction: WireTransaction, sigverify: boolean): boolean {
  const count = transaction.signatures.length
  if (count === 0 || transaction.bytes[0] !== count || count >= 0x80) return false
  const signers = transaction.message.staticAccountKeys.slice(0, count)
  if (signers.length !== count || new Set(signers).size !== count) return false
  return !sigverify || transaction.signatureBytes.every((signature) => signature.some((byte) => byte !== 0))
}

/** A commitment level, lowest first. */
export type Commitment = 'processed' | 'confirmed' | 'finalized'

/** True when `level` is at least `wanted`. */
export function reaches(level: Commitment, wanted: Commitment): boolean {
  const rank = { processed: 0, confirmed: 1, finalized: 2 }
  return rank[level] >= rank[wanted]
}

/**
 * One LiteSVM instance with the bookkeeping a validator adds around it: slots and block height, a
 * window of recent blockhashes, fees, the transaction status store, balances before and after.
 * Every landed transaction occupies its own slot, so each gets a fresh blockhash after it.
 *
 * @example
 * ```ts
 * const ledger = new Ledger()
 * const { signature } = ledger.process(wireBytes, { skipPreflight: false })
 * ```
 */
export class Ledger extends EventEmitter<{
  slot: [slot: bigint]
  transaction: [record: RecordedTransaction]
}> {
  readonly svm: LiteSVM
  private readonly native: NativeSvm
  readonly lamportsPerSignature: bigint
  slot: bigint
  transactionCount = 0n
  readonly blockhashes = new Map<string, bigint>()
  readonly history = new Map<string, RecordedTransaction>()
  /** The first blockhash of this ledger, served as `getGenesisHash`. */
  readonly genesisHash: string
  /** The node identity served by `getIdentity` (the node sets it to its faucet). */
  identity: string = programs.system

  constructor(options: LedgerOptions = {}) {
    super()
    this.lamportsPerSignature = options.lamportsPerSignature ?? 5000n
    // The node checks blockhash age itself (a window of 150 blocks like a validator); litesvm alone
    // accepts only its latest blockhash, which would fail any client racing another transaction.
    this.svm = new LiteSVM().withBlockhashCheck(false).withSigverify(true)
    this.native = nativeOf(this.svm)
    // Start at litesvm's own clock slot: warping backwards makes its preloaded programs (deployed at
    // that slot) unusable ("InvalidProgramForExecution").
    this.slot = this.svm.getClock().slot
    this.stampClock()
    this.installMemoPrograms()
    this.genesisHash = this.svm.latestBlockhash()
    this.blockhashes.set(this.genesisHash, this.slot + maxProcessingAge)
  }

  /** Block height: every slot of this node produces a block. */
  get blockHeight(): bigint {
    return this.slot
  }

  /** Seconds since the epoch, the `blockTime` of the current slot. */
  get blockTime(): number {
    return Math.floor(Date.now() / 1000)
  }

  private stampClock() {
    const clock = this.svm.getClock()
    clock.slot = this.slot
    clock.unixTimestamp = BigInt(this.blockTime)
    this.svm.setClock(clock)
  }

  // SPL Memo v2 (MemoSq4…) is missing from some litesvm builds; Memo v4 (Memo4c2p…, the default of
  // @solana-program/memo >= 0.14) is missing from all of them. Serve an existing memo program's
  // account at each missing address so memo instructions to any of the three ids execute.
  private installMemoPrograms() {
    const source = [programs.memoV2, programs.memoV1]
      .map((id) => this.svm.getAccount(address(id)))
      .find((account) => account.exists)
    if (!source?.exists) return
    for (const id of [programs.memoV2, programs.memoV4])
      if (!this.svm.getAccount(address(id)).exists) this.svm.setAccount({ ...source, address: address(id) })
  }

  /** The latest blockhash and the last block height at which it is still accepted. */
  latestBlockhash(): { blockhash: string; lastValidBlockHeight: bigint } {
    const blockhash = this.svm.latestBlockhash()
    return {
      blockhash,
      lastValidBlockHeight: this.blockhashes.get(blockhash) ?? this.slot + maxProcessingAge,
    }
  }

  /** Whether a blockhash is in the window of the last 150 blocks. */
  isBlockhashValid(blockhash: string): boolean {
    const lastValid = this.blockhashes.get(blockhash)
    return lastValid !== undefined && lastValid >= this.blockHeight
  }

  /**
   * Moves the ledger forward `count` slots, each with a new blockhash (old ones expire after 150).
   *
   * @example
   * ```ts
   * ledger.advanceSlots(151) // every earlier blockhash is now expired
   * ```
   */
  advanceSlots(count = 1): void {
    for (let index = 0; index < count; index++) {
      this.slot += 1n
      this.svm.warpToSlot(this.slot)
      this.svm.expireBlockhash()
      this.blockhashes.set(this.svm.latestBlockhash(), this.slot + maxProcessingAge)
      for (const [hash, lastValid] of this.blockhashes) {
        if (lastValid + maxProcessingAge < this.slot) this.blockhashes.delete(hash)
        else break
      }
      this.emit('slot', this.slot)
    }
    this.stampClock()
  }

  /**
   * Slots a transaction needs after its own before it counts as `confirmed` and as `finalized`
   * (0 and 0: every transaction is final at once, as before commitment levels existed).
   */
  readonly commitmentDepth = { confirmed: 0n, finalized: 0n }

  /**
   * The commitment a recorded transaction has reached: `processed` in its own slot, `confirmed` and
   * `finalized` once the ledger is {@link commitmentDepth} slots further.
   *
   * @example
   * ```ts
   * ledger.commitmentOf(record) // 'processed' | 'confirmed' | 'finalized'
   * ```
   */
  commitmentOf(record: { slot: bigint }): Commitment {
    // The slot after a transaction's own is produced as soon as it lands (see `process`).
    const after = this.slot - record.slot - 1n
    if (after >= this.commitmentDepth.finalized) return 'finalized'
    if (after >= this.commitmentDepth.confirmed) return 'confirmed'
    return 'processed'
  }

  /** The lamports of an account (0 when absent). */
  balance(account: string): bigint {
    return this.native.getBalance(addressBytes(account)) ?? 0n
  }

  /** An account as stored, or undefined. */
  account(
    account: string,
  ): { lamports: bigint; data: Uint8Array; owner: string; executable: boolean } | undefined {
    const value = this.native.getAccount(addressBytes(account))
    if (value === null) return undefined
    return {
      lamports: BigInt(value.lamports()),
      data: new Uint8Array(value.data()),
      owner: toBase58(value.owner()),
      executable: value.executable(),
    }
  }

  /** The decimals of a mint, or undefined when the address holds no mint. */
  mintDecimals(mint: string): number | undefined {
    const value = this.account(mint)
    return value ? readMintDecimals(value.owner, value.data) : undefined
  }

  /**
   * Credits lamports straight to an account (used for the genesis funding of the node's accounts).
   *
   * @example
   * ```ts
   * ledger.setLamports(payer, 1_000_000_000_000n)
   * ```
   */
  setLamports(account: string, lamports: bigint): void {
    const existing = this.svm.getAccount(address(account))
    if (existing.exists) this.svm.setAccount({ ...existing, lamports: toLamports(lamports) })
    else
      this.svm.setAccount({
        address: address(account),
        lamports: toLamports(lamports),
        programAddress: address(programs.system),
        executable: false,
        data: new Uint8Array(),
        space: 0n,
      })
  }

  /** Resolves the full account-key list of a message (static keys, then lookup-table addresses). */
  resolveAccountKeys(transaction: WireTransaction): {
    keys: string[]
    writable: string[]
    readonly: string[]
  } {
    const writable: string[] = []
    const readonly: string[] = []
    for (const lookup of transaction.message.addressTableLookups) {
      const table = this.account(lookup.accountKey)
      if (!table || table.owner !== programs.addressLookupTable)
        throw new SolanaRpcError(
          -32602,
          'invalid transaction: Transaction loads an address table account that does not exist',
        )
      // Address lookup table layout: a 56-byte metadata header, then 32-byte addresses.
      const entry = (index: number) => {
        const start = 56 + index * 32
        if (start + 32 > table.data.length)
          throw new SolanaRpcError(
            -32602,
            'invalid transaction: Transaction address table lookup uses an invalid index',
          )
        return toBase58(table.data.subarray(start, start + 32))
      }
      writable.push(...lookup.writableIndexes.map(entry))
      readonly.push(...lookup.readonlyIndexes.map(entry))
    }
    return { keys: [...transaction.message.staticAccountKeys, ...writable, ...readonly], writable, readonly }
  }

  private snapshot(keys: string[]): { balances: bigint[]; tokenBalances: TokenBalance[] } {
    const balances: bigint[] = []
    const tokenBalances: TokenBalance[] = []
    const decimalsOf = new Map<string, number | undefined>()
    keys.forEach((key, accountIndex) => {
      const value = this.account(key)
      balances.push(value?.lamports ?? 0n)
      if (!value || !isTokenProgram(value.owner)) return
      const state = readTokenAccount(value.owner, value.data)
      if (!state) return
      if (!decimalsOf.has(state.mint)) decimalsOf.set(state.mint, this.mintDecimals(state.mint))
      const decimals = decimalsOf.get(state.mint)
      if (decimals === undefined) return
      tokenBalances.push({
        accountIndex,
        mint: state.mint,
        owner: state.owner,
        programId: value.owner,
        uiTokenAmount: uiTokenAmount(state.amount, decimals),
      })
    })
    return { balances, tokenBalances }
  }

  /**
   * The fee of a message: 5000 lamports per signature plus the priority fee, which is the
   * compute-unit price (micro-lamports) times the compute-unit limit, rounded up.
   */
  fee(transaction: WireTransaction, keys: string[]): bigint {
    let limit: bigint | undefined
    let price = 0n
    let defaultLimit = 0n
    for (const instruction of transaction.message.instructions) {
      const programId = keys[instruction.programIdIndex] ?? ''
      const data = instruction.data
      const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
      if (programId === programs.computeBudget) {
        if (data[0] === 2 && data.length >= 5) limit = BigInt(view.getUint32(1, true))
        if (data[0] === 3 && data.length >= 9) price = view.getBigUint64(1, true)
      }
      defaultLimit += builtinPrograms.has(programId) ? builtinComputeUnits : defaultComputeUnits
    }
    const units = (limit ?? defaultLimit) > maxComputeUnits ? maxComputeUnits : (limit ?? defaultLimit)
    const priority = (price * units + 999_999n) / 1_000_000n
    return this.lamportsPerSignature * BigInt(transaction.signatures.length) + priority
  }

  private innerInstructions(metadata: TransactionMetadata): InnerInstructionGroup[] {
    const groups: InnerInstructionGroup[] = []
    metadata.innerInstructions().forEach((list, index) => {
      if (list.length === 0) return
      groups.push({
        index,
        instructions: list.map((inner) => {
          const compiled = inner.instruction()
          return {
            programIdIndex: compiled.programIdIndex(),
            accounts: Array.from(compiled.accounts()),
            data: new Uint8Array(compiled.data()),
            stackHeight: inner.stackHeight(),
          }
        }),
      })
    })
    return groups
  }

  private returnData(metadata: TransactionMetadata): { programId: string; data: Uint8Array } | null {
    const value = metadata.returnData()
    const data = value.data()
    if (data.length === 0) return null
    return { programId: toBase58(value.programId()), data: new Uint8Array(data) }
  }

  private blockhashFailure(transaction: WireTransaction, keys: string[]): boolean {
    if (this.isBlockhashValid(transaction.message.recentBlockhash)) return false
    // A durable-nonce transaction starts with System AdvanceNonceAccount (instruction 4); the runtime
    // checks its nonce value instead of the blockhash window.
    const first = transaction.message.instructions[0]
    const isNonce =
      first !== undefined &&
      keys[first.programIdIndex] === programs.system &&
      first.data.length >= 4 &&
      new DataView(first.data.buffer, first.data.byteOffset).getUint32(0, true) === 4
    return !isNonce
  }

  private preflightError(err: TransactionErrorJson, logs: string[], unitsConsumed: bigint): SolanaRpcError {
    if (err === 'SignatureFailure')
      return new SolanaRpcError(-32003, 'Transaction signature verification failure')
    return new SolanaRpcError(-32002, `Transaction simulation failed: ${describeTransactionError(err)}`, {
      accounts: null,
      err,
      innerInstructions: null,
      loadedAccountsDataSize: 0,
      logs,
      replacementBlockhash: null,
      returnData: null,
      unitsConsumed,
    })
  }

  private toKitTransaction(transaction: WireTransaction): Transaction {
    return transactionDecoder.decode(transaction.bytes) as Transaction
  }

  /** litesvm's `sendTransaction`, given the wire bytes when kit would re-encode them unchanged. */
  private send(transaction: WireTransaction): TransactionMetadata | FailedTransactionMetadata {
    if (!passesAsIs(transaction, this.native.getSigverify()))
      return this.svm.sendTransaction(this.toKitTransaction(transaction))
    return transaction.message.version === 'legacy'
      ? this.native.sendLegacyTransaction(transaction.bytes)
      : this.native.sendVersionedTransaction(transaction.bytes)
  }

  /** litesvm's `simulateTransaction`, given the wire bytes when kit would re-encode them unchanged. */
  private simulateWire(transaction: WireTransaction): SimulatedTransactionInfo | FailedTransactionMetadata {
    if (!passesAsIs(transaction, this.native.getSigverify()))
      return this.svm.simulateTransaction(this.toKitTransaction(transaction))
    const inner =
      transaction.message.version === 'legacy'
        ? this.native.simulateLegacyTransaction(transaction.bytes)
        : this.native.simulateVersionedTransaction(transaction.bytes)
    return inner instanceof FailedTransactionMetadata
      ? inner
      : new SimulatedTransactionInfo(inner as ConstructorParameters<typeof SimulatedTransactionInfo>[0])
  }

  /**
   * Executes a signed wire transaction and records it; a transaction that fails to execute still
   * lands (fee charged, `err` set) when `skipPreflight` is true, as on a cluster.
   *
   * Unlike a cluster, a transaction that cannot land at all (bad signature, unknown blockhash,
   * duplicate, fee payer without funds) is refused with the preflight error even with
   * `skipPreflight`, rather than silently dropped, so tests fail fast instead of timing out.
   *
   * @example
   * ```ts
   * const { signature } = ledger.process(bytes, { skipPreflight: true })
   * ```
   */
  process(
    bytes: Uint8Array,
    options: { skipPreflight: boolean },
  ): { signature: string; record: RecordedTransaction } {
    const transaction = decodeTransaction(bytes)
    const signature = transaction.signatures[0]
    if (signature === undefined) throw new SolanaRpcError(-32602, 'invalid transaction: no signatures')
    if (this.history.has(signature)) throw this.preflightError('AlreadyProcessed', [], 0n)
    const { keys, writable, readonly } = this.resolveAccountKeys(transaction)
    if (this.blockhashFailure(transaction, keys)) throw this.preflightError('BlockhashNotFound', [], 0n)
    if (!options.skipPreflight) {
      const simulated = this.simulateWire(transaction)
      if (simulated instanceof FailedTransactionMetadata) {
        const meta = simulated.meta()
        throw this.preflightError(
          toTransactionErrorJson(simulated.err()),
          meta.logs(),
          meta.computeUnitsConsumed(),
        )
      }
    }
    const pre = this.snapshot(keys)
    const fee = this.fee(transaction, keys)
    const result = this.send(transaction)
    let err: TransactionErrorJson | null = null
    let metadata: TransactionMetadata
    if (result instanceof FailedTransactionMetadata) {
      err = toTransactionErrorJson(result.err())
      metadata = result.meta()
      // Only a transaction that was charged its fee is in litesvm's status store; any other failure
      // (load or sanitize errors) never lands.
      if (this.svm.getTransaction(signature as Parameters<LiteSVM['getTransaction']>[0]) === null)
        throw this.preflightError(err, metadata.logs(), metadata.computeUnitsConsumed())
    } else metadata = result
    const post = this.snapshot(keys)
    const record: RecordedTransaction = {
      signature,
      slot: this.slot,
      blockTime: this.blockTime,
      transaction,
      accountKeys: keys,
      loadedAddresses: { writable, readonly },
      err,
      fee,
      logMessages: metadata.logs(),
      preBalances: pre.balances,
      postBalances: post.balances,
      preTokenBalances: pre.tokenBalances,
      postTokenBalances: post.tokenBalances,
      innerInstructions: this.innerInstructions(metadata),
      computeUnitsConsumed: metadata.computeUnitsConsumed(),
      returnData: this.returnData(metadata),
    }
    this.history.set(signature, record)
    this.transactionCount += 1n
    this.emit('transaction', record)
    this.advanceSlots(1)
    return { signature, record }
  }

  /**
   * Simulates a wire transaction without committing it (`sigVerify` off by default, as the RPC).
   *
   * @example
   * ```ts
   * const result = ledger.simulate(bytes, { sigVerify: false, replaceRecentBlockhash: true })
   * ```
   */
  simulate(
    bytes: Uint8Array,
    options: { sigVerify: boolean; replaceRecentBlockhash: boolean },
  ): SimulationResult {
    const transaction = decodeTransaction(bytes)
    const { keys } = this.resolveAccountKeys(transaction)
    const fee = this.fee(transaction, keys)
    const base = { fee, accountKeys: keys, postAccounts: new Map(), innerInstructions: [], returnData: null }
    if (!options.replaceRecentBlockhash && this.blockhashFailure(transaction, keys))
      return { ...base, err: 'BlockhashNotFound', logs: [], unitsConsumed: 0n }
    if (options.sigVerify !== true) this.svm.withSigverify(false)
    try {
      const result = this.simulateWire(transaction)
      if (result instanceof FailedTransactionMetadata) {
        const meta = result.meta()
        return {
          ...base,
          err: toTransactionErrorJson(result.err()),
          logs: meta.logs(),
          unitsConsumed: meta.computeUnitsConsumed(),
          innerInstructions: this.innerInstructions(meta),
        }
      }
      const meta = result.meta()
      const postAccounts: SimulationResult['postAccounts'] = new Map()
      for (const account of result.postAccounts())
        postAccounts.set(account.address, {
          lamports: BigInt(account.lamports),
          data: new Uint8Array(account.data),
          owner: account.programAddress,
          executable: account.executable,
        })
      return {
        ...base,
        err: null,
        logs: meta.logs(),
        unitsConsumed: meta.computeUnitsConsumed(),
        innerInstructions: this.innerInstructions(meta),
        returnData: this.returnData(meta),
        postAccounts,
      }
    } finally {
      this.svm.withSigverify(true)
    }
  }
}

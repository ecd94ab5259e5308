import { Buffer } from 'node:buffer'
import { type Commitment, type Ledger, type RecordedTransaction, reaches, SolanaRpcError } from './Ledger.js'
import {
  isTokenProgram,
  parseInstruction,
  parseTokenProgramAccount,
  readTokenAccount,
  tokenAccountKind,
  uiTokenAmount,
} from './parse.js'
import { programs } from './programs.js'
import {
  type CompiledInstruction,
  decodeMessage,
  fromBase58,
  isBase58Address,
  isWritable,
  toBase58,
  type WireTransaction,
} from './wire.js'

/**
 * The JSON-RPC methods of the Solana node, answering with the shapes of Agave's RPC (the ones
 * `@solana/kit`'s `createSolanaRpc` parses). Each handler returns plain values; bigints become JSON
 * numbers on the wire.
 */

/** A method handler: params in, result out (or a thrown {@link SolanaRpcError}). */
export type RpcHandler = (params: unknown[]) => unknown

// "rentEpoch": u64::MAX for every rent-exempt account since rent collection ended.
const rentEpoch = 18446744073709551615n
const slotsPerEpoch = 432_000n
const version = { 'solana-core': '2.2.0', 'feature-set': 3294202862 }

const invalidParams = (message: string) => new SolanaRpcError(-32602, message)

function config(params: unknown[], index: number): Record<string, unknown> {
  const value = params[index]
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {}
}

function addressParam(params: unknown[], index: number): string {
  const value = params[index]
  if (!isBase58Address(value)) throw invalidParams('Invalid param: Invalid')
  return value
}

function decodeEncoded(value: unknown, encoding: unknown): Uint8Array {
  if (typeof value !== 'string') throw invalidParams('Invalid params: expected an encoded transaction')
  const name = encoding ?? 'base58'
  try {
    if (name === 'base64') return new Uint8Array(Buffer.from(value, 'base64'))
    if (name === 'base58') return fromBase58(value)
  } catch {
    throw invalidParams(`invalid ${String(name)} encoding`)
  }
  throw invalidParams(
    `Invalid params: unknown variant \`${String(name)}\`, expected \`base58\` or \`base64\``,
  )
}

/**
 * Builds the method table over one ledger. `airdrop` is injected because it signs asynchronously.
 *
 * @example
 * ```ts
 * const handlers = createHandlers(ledger, airdrop)
 * await handlers.getSlot([])
 * ```
 */
export function createHandlers(
  ledger: Ledger,
  airdrop: (recipient: string, lamports: bigint) => Promise<string>,
): Record<string, (params: unknown[]) => unknown> {
  const context = () => ({ slot: ledger.slot, apiVersion: version['solana-core'] })
  const withContext = (value: unknown) => ({ context: context(), value })

  function encodeAccount(account: ReturnType<Ledger['account']>, encoding: unknown) {
    if (!account) return null
    const base = {
      executable: account.executable,
      lamports: account.lamports,
      owner: account.owner,
      rentEpoch,
      space: account.data.length,
    }
    if (encoding === 'jsonParsed') {
      const parsed = parseTokenProgramAccount(account.owner, account.data, (mint) =>
        ledger.mintDecimals(mint),
      )
      if (parsed) return { ...base, data: parsed }
      return { ...base, data: [Buffer.from(account.data).toString('base64'), 'base64'] }
    }
    if (encoding === 'base64')
      return { ...base, data: [Buffer.from(account.data).toString('base64'), 'base64'] }
    if (encoding === 'base58') return { ...base, data: [toBase58(account.data), 'base58'] }
    if (encoding === undefined || encoding === 'binary') return { ...base, data: toBase58(account.data) }
    throw invalidParams(`Invalid params: unsupported encoding \`${String(encoding)}\``)
  }

  function signatureStatus(signature: unknown) {
    const record = typeof signature === 'string' ? ledger.history.get(signature) : undefined
    if (!record) return null
    const level = ledger.commitmentOf(record)
    return {
      slot: record.slot,
      // "confirmations: null if rooted (finalized)", else the slots built on top of it.
      confirmations: level === 'finalized' ? null : Number(ledger.slot - record.slot - 1n),
      err: record.err,
      confirmationStatus: level,
      status: record.err === null ? { Ok: null } : { Err: record.err },
    }
  }

  return {
    getHealth: () => 'ok',
    getVersion: () => version,
    getGenesisHash: () => ledger.genesisHash,
    getIdentity: () => ({ identity: ledger.identity }),
    getSlot: () => ledger.slot,
    getBlockHeight: () => ledger.blockHeight,
    getTransactionCount: () => ledger.transactionCount,
    getEpochInfo: () => ({
      absoluteSlot: ledger.slot,
      blockHeight: ledger.blockHeight,
      epoch: ledger.slot / slotsPerEpoch,
      slotIndex: ledger.slot % slotsPerEpoch,
      slotsInEpoch: slotsPerEpoch,
      transactionCount: ledger.transactionCount,
    }),
    getLatestBlockhash: () => withContext(ledger.latestBlockhash()),
    isBlockhashValid: (params) => {
      if (typeof params[0] !== 'string') throw invalidParams('Invalid param: expected a blockhash')
      return withContext(ledger.isBlockhashValid(params[0]))
    },
    getBalance: (params) => withContext(ledger.balance(addressParam(params, 0))),
    getAccountInfo: (params) =>
      withContext(encodeAccount(ledger.account(addressParam(params, 0)), config(params, 1).encoding)),
    getMultipleAccounts: (params) => {
      const list = params[0]
      if (!Array.isArray(list)) throw invalidParams('Invalid params: expected a list of addresses')
      const encoding = config(params, 1).encoding
      return withContext(
        list.map((_, index) => encodeAccount(ledger.account(addressParam(list, index)), encoding)),
      )
    },
    getMinimumBalanceForRentExemption: (params) =>
      ledger.svm.minimumBalanceForRentExemption(BigInt(Number(params[0] ?? 0))),
    getFeeForMessage: (params) => {
      const bytes = decodeEncoded(params[0], 'base64')
      const message = decodeMessage(bytes)
      if (!ledger.isBlockhashValid(message.recentBlockhash)) return withContext(null)
      const fake: WireTransaction = {
        signatures: new Array(message.header.numRequiredSignatures).fill(''),
        signatureBytes: [],
        message,
        messageBytes: bytes,
        bytes,
      }
      return withContext(ledger.fee(fake, ledger.resolveAccountKeys(fake).keys))
    },
    getRecentPrioritizationFees: () => [],
    requestAirdrop: async (params) => {
      const recipient = addressParam(params, 0)
      const lamports = params[1]
      if (typeof lamports !== 'number' && typeof lamports !== 'bigint')
        throw invalidParams('Invalid param: lamports')
      return airdrop(recipient, BigInt(lamports))
    },
    sendTransaction: (params) => {
      const options = config(params, 1)
      const bytes = decodeEncoded(params[0], options.encoding)
      return ledger.process(bytes, { skipPreflight: options.skipPreflight === true }).signature
    },
    simulateTransaction: (params) => {
      const options = config(params, 1)
      const bytes = decodeEncoded(params[0], options.encoding)
      if (options.sigVerify === true && options.replaceRecentBlockhash === true)
        throw invalidParams('sigVerify may not be used with replaceRecentBlockhash')
      const result = ledger.simulate(bytes, {
        sigVerify: options.sigVerify === true,
        replaceRecentBlockhash: options.replaceRecentBlockhash === true,
      })
      const accountsConfig = options.accounts as { addresses?: unknown[]; encoding?: string } | undefined
      const accounts = accountsConfig?.addresses
        ? accountsConfig.addresses.map((_, index) => {
            const key = addressParam(accountsConfig.addresses ?? [], index)
            const post = result.postAccounts.get(key) ?? ledger.account(key)
            return encodeAccount(post, accountsConfig.encoding ?? 'base64')
          })
        : null
      const value: Record<string, unknown> = {
        err: result.err,
        logs: result.logs,
        accounts,
        unitsConsumed: result.unitsConsumed,
        returnData: result.returnData
          ? {
              programId: result.returnData.programId,
              data: [Buffer.from(result.returnData.data).toString('base64'), 'base64'],
            }
          : null,
        fee: result.fee,
        loadedAddresses: null,
        preBalances: null,
        postBalances: null,
        preTokenBalances: null,
        postTokenBalances: null,
        replacementBlockhash: options.replaceRecentBlockhash === true ? ledger.latestBlockhash() : null,
      }
      if (options.innerInstructions === true) {
        const keys = result.accountKeys
        value.innerInstructions = result.innerInstructions.map((group) => ({
          index: group.index,
          instructions: group.instructions.map((instruction) =>
            jsonParsedInstruction(instruction, keys, instruction.stackHeight),
          ),
        }))
      }
      return withContext(value)
    },
    getSignatureStatuses: (params) => {
      const list = params[0]
      if (!Array.isArray(list)) throw invalidParams('Invalid params: expected a list of signatures')
      if (list.length > 256) throw invalidParams('Too many inputs provided; max 256')
      return withContext(list.map(signatureStatus))
    },
    getTransaction: (params) => {
      const signature = params[0]
      if (typeof signature !== 'string') throw invalidParams('Invalid param: expected a signature')
      const options = typeof params[1] === 'string' ? { encoding: params[1] } : config(params, 1)
      const record = ledger.history.get(signature)
      // Agave: getTransaction defaults to `finalized` and refuses `processed`.
      const wanted = (options.commitment ?? 'finalized') as Commitment
      if (wanted === 'processed') throw invalidParams('Method does not support commitment below `confirmed`')
      if (!record || !reaches(ledger.commitmentOf(record), wanted)) return null
      const maxVersion = options.maxSupportedTransactionVersion
      if (record.transaction.message.version === 0 && (maxVersion === undefined || maxVersion === null))
        throw new SolanaRpcError(
          -32015,
          'Transaction version (0) is not supported by the requesting client. Please try the request again with the following configuration parameter: "maxSupportedTransactionVersion": 0',
        )
      return encodeTransaction(record, options.encoding ?? 'json')
    },
    getSignaturesForAddress: (params) => {
      const target = addressParam(params, 0)
      const options = config(params, 1)
      const limit = Math.min(Number(options.limit ?? 1000), 1000)
      const found: unknown[] = []
      let started = options.before === undefined
      for (const record of [...ledger.history.values()].reverse()) {
        if (!started) {
          if (record.signature === options.before) started = true
          continue
        }
        if (record.signature === options.until) break
        if (!record.accountKeys.includes(target)) continue
        found.push({
          signature: record.signature,
          slot: record.slot,
          err: record.err,
          memo: memoOf(record),
          blockTime: record.blockTime,
          confirmationStatus: ledger.commitmentOf(record),
        })
        if (found.length >= limit) break
      }
      return found
    },
    getTokenAccountBalance: (params) => {
      const account = ledger.account(addressParam(params, 0))
      const state = account ? readTokenAccount(account.owner, account.data) : undefined
      const decimals = state ? ledger.mintDecimals(state.mint) : undefined
      if (!state || decimals === undefined) throw invalidParams('Invalid param: not a Token account')
      return withContext(uiTokenAmount(state.amount, decimals))
    },
    getTokenSupply: (params) => {
      const account = ledger.account(addressParam(params, 0))
      if (!account || tokenAccountKind(account.owner, account.data) !== 'mint')
        throw invalidParams('Invalid param: not a Token mint')
      const view = new DataView(account.data.buffer, account.data.byteOffset)
      return withContext(uiTokenAmount(view.getBigUint64(36, true), account.data[44] ?? 0))
    },
    getTokenAccountsByOwner: (params) => {
      const owner = addressParam(params, 0)
      const filter = config(params, 1)
      const encoding = config(params, 2).encoding
      const programIds =
        typeof filter.programId === 'string'
          ? [filter.programId]
          : typeof filter.mint === 'string'
            ? [ledger.account(filter.mint)?.owner ?? programs.token]
            : undefined
      if (!programIds || !isTokenProgram(programIds[0] ?? ''))
        throw invalidParams('Invalid param: unrecognized Token program id')
      const found: unknown[] = []
      for (const programId of programIds)
        for (const entry of ledger.svm.getProgramAccounts(programId as never)) {
          const data = new Uint8Array(entry.data)
          const state = readTokenAccount(programId, data)
          if (!state || state.owner !== owner) continue
          if (typeof filter.mint === 'string' && state.mint !== filter.mint) continue
          found.push({
            pubkey: entry.address,
            account: encodeAccount(ledger.account(entry.address), encoding),
          })
        }
      return withContext(found)
    },
  }
}

function memoOf(record: RecordedTransaction): string | null {
  const memos: string[] = []
  for (const instruction of record.transaction.message.instructions) {
    const programId = record.accountKeys[instruction.programIdIndex]
    if (programId !== programs.memoV1 && programId !== programs.memoV2 && programId !== programs.memoV4)
      continue
    const text = Buffer.from(instruction.data).toString('utf8')
    memos.push(`[${instruction.data.length}] ${text}`)
  }
  return memos.length > 0 ? memos.join('; ') : null
}

function jsonInstruction(instruction: CompiledInstruction, stackHeight: number | null) {
  return {
    programIdIndex: instruction.programIdIndex,
    accounts: instruction.accounts,
    data: toBase58(instruction.data),
    stackHeight,
  }
}

function jsonParsedInstruction(instruction: CompiledInstruction, keys: string[], stackHeight: number | null) {
  const programId = keys[instruction.programIdIndex] ?? ''
  const accounts = instruction.accounts.map((index) => keys[index] ?? '')
  const parsed = parseInstruction({ programId, accounts, data: instruction.data })
  if (parsed) return { ...parsed, stackHeight }
  return { programId, accounts, data: toBase58(instruction.data), stackHeight }
}

/**
 * A recorded transaction in the `getTransaction` shape for an encoding (`json`, `jsonParsed`,
 * `base64`, `base58`).
 *
 * @example
 * ```ts
 * encodeTransaction(record, 'jsonParsed').meta.fee
 * ```
 */
export function encodeTransaction(record: RecordedTransaction, encoding: unknown) {
  const { message } = record.transaction
  const keys = record.accountKeys
  const parsed = encoding === 'jsonParsed'
  const meta: Record<string, unknown> = {
    err: record.err,
    status: record.err === null ? { Ok: null } : { Err: record.err },
    fee: record.fee,
    preBalances: record.preBalances,
    postBalances: record.postBalances,
    innerInstructions: record.innerInstructions.map((group) => ({
      index: group.index,
      instructions: group.instructions.map((instruction) =>
        parsed
          ? jsonParsedInstruction(instruction, keys, instruction.stackHeight)
          : jsonInstruction(instruction, instruction.stackHeight),
      ),
    })),
    logMessages: record.logMessages,
    preTokenBalances: record.preTokenBalances,
    postTokenBalances: record.postTokenBalances,
    rewards: [],
    computeUnitsConsumed: record.computeUnitsConsumed,
  }
  if (!parsed) meta.loadedAddresses = record.loadedAddresses
  if (record.returnData)
    meta.returnData = {
      programId: record.returnData.programId,
      data: [Buffer.from(record.returnData.data).toString('base64'), 'base64'],
    }
  let transaction: unknown
  if (encoding === 'base64')
    transaction = [Buffer.from(record.transaction.bytes).toString('base64'), 'base64']
  else if (encoding === 'base58') transaction = [toBase58(record.transaction.bytes), 'base58']
  else if (encoding === 'json' || parsed) {
    const lookups =
      message.version === 0
        ? {
            addressTableLookups: message.addressTableLookups.map((lookup) => ({
              accountKey: lookup.accountKey,
              writableIndexes: lookup.writableIndexes,
              readonlyIndexes: lookup.readonlyIndexes,
            })),
          }
        : {}
    const writableLoaded = record.loadedAddresses.writable.length
    transaction = {
      signatures: record.transaction.signatures,
      message: parsed
        ? {
            accountKeys: keys.map((pubkey, index) => ({
              pubkey,
              writable: isWritable(message, index, writableLoaded),
              signer: index < message.header.numRequiredSignatures,
              source: index < message.staticAccountKeys.length ? 'transaction' : 'lookupTable',
            })),
            recentBlockhash: message.recentBlockhash,
            instructions: message.instructions.map((instruction) =>
              jsonParsedInstruction(instruction, keys, null),
            ),
            ...lookups,
          }
        : {
            accountKeys: message.staticAccountKeys,
            header: message.header,
            recentBlockhash: message.recentBlockhash,
            instructions: message.instructions.map((instruction) => jsonInstruction(instruction, null)),
            ...lookups,
          },
    }
  } else throw invalidParams(`Invalid params: unknown variant \`${String(encoding)}\``)
  return { slot: record.slot, blockTime: record.blockTime, version: message.version, transaction, meta }
}

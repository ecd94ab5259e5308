import { programs } from './programs.js'
import { toBase58 } from './wire.js'

/**
 * The `jsonParsed` views of the node: token accounts and mints (as `getAccountInfo` shows them) and the
 * instructions of the programs a payment touches (System, SPL Token, Token-2022, Associated Token
 * Account, Memo), shaped like Agave's `solana-account-decoder` and `solana-transaction-status` output.
 */

/** A token amount as the RPC shows it. */
export type UiTokenAmount = {
  amount: string
  decimals: number
  uiAmount: number | null
  uiAmountString: string
}

const view = (data: Uint8Array) => new DataView(data.buffer, data.byteOffset, data.byteLength)
const u64 = (data: Uint8Array, offset: number) => view(data).getBigUint64(offset, true)
const key = (data: Uint8Array, offset: number) => toBase58(data.subarray(offset, offset + 32))
// COption<Pubkey>: a u32 tag (0 none, 1 some) then 32 bytes.
const optionalKey = (data: Uint8Array, offset: number): string | null =>
  view(data).getUint32(offset, true) === 1 ? key(data, offset + 4) : null

/**
 * Formats a raw token amount with its decimals, trimming trailing zeros like the RPC's `uiAmountString`.
 *
 * @example
 * ```ts
 * uiTokenAmount(1_500_000n, 6) // { amount: '1500000', decimals: 6, uiAmount: 1.5, uiAmountString: '1.5' }
 * ```
 */
export function uiTokenAmount(amount: bigint, decimals: number): UiTokenAmount {
  const digits = amount.toString().padStart(decimals + 1, '0')
  const whole = digits.slice(0, digits.length - decimals)
  const fraction = digits.slice(digits.length - decimals).replace(/0+$/, '')
  const uiAmountString = fraction ? `${whole}.${fraction}` : whole
  return { amount: amount.toString(), decimals, uiAmount: Number(uiAmountString), uiAmountString }
}

/**
 * Whether a program id is SPL Token or Token-2022.
 *
 * @example
 * ```ts
 * isTokenProgram(programs.token2022) // true
 * ```
 */
export const isTokenProgram = (owner: string) => owner === programs.token || owner === programs.token2022

const tokenProgramName = (owner: string) => (owner === programs.token2022 ? 'spl-token-2022' : 'spl-token')

/**
 * What kind of token-program account the data holds (Token-2022 puts an account-type byte at 165).
 *
 * @example
 * ```ts
 * tokenAccountKind(programs.token, new Uint8Array(82)) // 'mint'
 * ```
 */
export function tokenAccountKind(
  owner: string,
  data: Uint8Array,
): 'mint' | 'account' | 'multisig' | undefined {
  if (!isTokenProgram(owner)) return undefined
  if (data.length === 82) return 'mint'
  if (data.length === 165) return 'account'
  if (data.length === 355) return 'multisig'
  if (owner === programs.token2022 && data.length > 165) {
    if (data[165] === 1) return 'mint'
    if (data[165] === 2) return 'account'
  }
  return undefined
}

/** The fields of a token account. */
export type TokenAccountState = { mint: string; owner: string; amount: bigint }

/**
 * Reads mint, owner and amount of a token account; undefined if the data is not one.
 *
 * @example
 * ```ts
 * readTokenAccount(account.owner, account.data)?.amount
 * ```
 */
export function readTokenAccount(owner: string, data: Uint8Array): TokenAccountState | undefined {
  if (tokenAccountKind(owner, data) !== 'account') return undefined
  return { mint: key(data, 0), owner: key(data, 32), amount: u64(data, 64) }
}

/**
 * Reads the decimals of a mint; undefined if the data is not one.
 *
 * @example
 * ```ts
 * readMintDecimals(mintAccount.owner, mintAccount.data) // 6
 * ```
 */
export function readMintDecimals(owner: string, data: Uint8Array): number | undefined {
  if (tokenAccountKind(owner, data) !== 'mint') return undefined
  return data[44]
}

// Token-2022 TLV extension types (spl_token_2022::extension::ExtensionType) → the RPC's names.
const extensionNames: Record<number, string> = {
  1: 'transferFeeConfig',
  2: 'transferFeeAmount',
  3: 'mintCloseAuthority',
  4: 'confidentialTransferMint',
  5: 'confidentialTransferAccount',
  6: 'defaultAccountState',
  7: 'immutableOwner',
  8: 'memoTransfer',
  9: 'nonTransferable',
  10: 'interestBearingConfig',
  11: 'cpiGuard',
  12: 'permanentDelegate',
  13: 'nonTransferableAccount',
  14: 'transferHook',
  15: 'transferHookAccount',
  18: 'metadataPointer',
  19: 'tokenMetadata',
  20: 'groupPointer',
  21: 'tokenGroup',
  22: 'groupMemberPointer',
  23: 'tokenGroupMember',
  25: 'scaledUiAmountConfig',
  26: 'pausableConfig',
  27: 'pausableAccount',
}

function extensions(data: Uint8Array): { extension: string }[] {
  const found: { extension: string }[] = []
  let offset = 166
  while (offset + 4 <= data.length) {
    const type = view(data).getUint16(offset, true)
    const length = view(data).getUint16(offset + 2, true)
    if (type === 0) break
    found.push({ extension: extensionNames[type] ?? 'unparseableExtension' })
    offset += 4 + length
  }
  return found
}

/**
 * The `jsonParsed` form of a token-program account, or undefined when the node falls back to base64
 * (as the real RPC does for any account it cannot parse).
 *
 * @example
 * ```ts
 * parseTokenProgramAccount(owner, data, (mint) => 6)
 * ```
 */
export function parseTokenProgramAccount(
  owner: string,
  data: Uint8Array,
  decimalsOf: (mint: string) => number | undefined,
): { program: string; parsed: { type: string; info: Record<string, unknown> }; space: number } | undefined {
  const kind = tokenAccountKind(owner, data)
  const program = tokenProgramName(owner)
  const withExtensions = (info: Record<string, unknown>) => {
    if (owner === programs.token2022 && data.length > 165) {
      const list = extensions(data)
      if (list.length > 0) info.extensions = list
    }
    return info
  }
  if (kind === 'mint') {
    const info = withExtensions({
      mintAuthority: optionalKey(data, 0),
      supply: u64(data, 36).toString(),
      decimals: data[44],
      isInitialized: data[45] === 1,
      freezeAuthority: optionalKey(data, 46),
    })
    return { program, parsed: { type: 'mint', info }, space: data.length }
  }
  if (kind === 'account') {
    const mint = key(data, 0)
    const decimals = decimalsOf(mint)
    if (decimals === undefined) return undefined
    const stateByte = data[108]
    const state = stateByte === 1 ? 'initialized' : stateByte === 2 ? 'frozen' : 'uninitialized'
    const nativeTag = view(data).getUint32(109, true)
    const info: Record<string, unknown> = {
      isNative: nativeTag === 1,
      mint,
      owner: key(data, 32),
      state,
      tokenAmount: uiTokenAmount(u64(data, 64), decimals),
    }
    const delegate = optionalKey(data, 72)
    if (delegate) {
      info.delegate = delegate
      info.delegatedAmount = uiTokenAmount(u64(data, 121), decimals)
    }
    if (nativeTag === 1) info.rentExemptReserve = uiTokenAmount(u64(data, 113), decimals)
    const closeAuthority = optionalKey(data, 129)
    if (closeAuthority) info.closeAuthority = closeAuthority
    return { program, parsed: { type: 'account', info: withExtensions(info) }, space: data.length }
  }
  return undefined
}

/** An instruction resolved to addresses, the input of the instruction parsers. */
export type ResolvedInstruction = { programId: string; accounts: string[]; data: Uint8Array }

/** A parsed instruction of the `jsonParsed` encoding, or undefined when the RPC would not parse it. */
export type ParsedInstruction = { program: string; programId: string; parsed: unknown }

const at = (list: string[], index: number) => list[index] ?? ''

// Agave's parse_signers: a single-signer authority, or a multisig account followed by its signers.
function authority(
  info: Record<string, unknown>,
  accounts: string[],
  index: number,
  name: string,
  multisigName: string,
) {
  if (accounts.length > index + 1) {
    info[multisigName] = at(accounts, index)
    info.signers = accounts.slice(index + 1)
  } else {
    info[name] = at(accounts, index)
  }
  return info
}

function parseToken(
  instruction: ResolvedInstruction,
): { type: string; info: Record<string, unknown> } | undefined {
  const { data, accounts } = instruction
  const tag = data[0]
  const amount = () => (data.length >= 9 ? u64(data, 1) : 0n)
  switch (tag) {
    case 0:
    case 20: {
      // InitializeMint / InitializeMint2: decimals, mint authority, COption<freeze authority> (1-byte tag).
      const info: Record<string, unknown> = {
        mint: at(accounts, 0),
        decimals: data[1],
        mintAuthority: key(data, 2),
      }
      if (data[34] === 1) info.freezeAuthority = key(data, 35)
      if (tag === 0) info.rentSysvar = at(accounts, 1)
      return { type: tag === 0 ? 'initializeMint' : 'initializeMint2', info }
    }
    case 1:
      return {
        type: 'initializeAccount',
        info: {
          account: at(accounts, 0),
          mint: at(accounts, 1),
          owner: at(accounts, 2),
          rentSysvar: at(accounts, 3),
        },
      }
    case 16:
    case 18:
      return {
        type: tag === 16 ? 'initializeAccount2' : 'initializeAccount3',
        info: { account: at(accounts, 0), mint: at(accounts, 1), owner: key(data, 1) },
      }
    case 3:
      return {
        type: 'transfer',
        info: authority(
          { source: at(accounts, 0), destination: at(accounts, 1), amount: amount().toString() },
          accounts,
          2,
          'authority',
          'multisigAuthority',
        ),
      }
    case 4:
      return {
        type: 'approve',
        info: authority(
          { source: at(accounts, 0), delegate: at(accounts, 1), amount: amount().toString() },
          accounts,
          2,
          'owner',
          'multisigOwner',
        ),
      }
    case 7:
      return {
        type: 'mintTo',
        info: authority(
          { mint: at(accounts, 0), account: at(accounts, 1), amount: amount().toString() },
          accounts,
          2,
          'mintAuthority',
          'multisigMintAuthority',
        ),
      }
    case 8:
      return {
        type: 'burn',
        info: authority(
          { account: at(accounts, 0), mint: at(accounts, 1), amount: amount().toString() },
          accounts,
          2,
          'authority',
          'multisigAuthority',
        ),
      }
    case 9:
      return {
        type: 'closeAccount',
        info: authority(
          { account: at(accounts, 0), destination: at(accounts, 1) },
          accounts,
          2,
          'owner',
          'multisigOwner',
        ),
      }
    case 12:
      return {
        type: 'transferChecked',
        info: authority(
          {
            source: at(accounts, 0),
            mint: at(accounts, 1),
            destination: at(accounts, 2),
            tokenAmount: uiTokenAmount(amount(), data[9] ?? 0),
          },
          accounts,
          3,
          'authority',
          'multisigAuthority',
        ),
      }
    case 14:
      return {
        type: 'mintToChecked',
        info: authority(
          {
            mint: at(accounts, 0),
            account: at(accounts, 1),
            tokenAmount: uiTokenAmount(amount(), data[9] ?? 0),
          },
          accounts,
          2,
          'mintAuthority',
          'multisigMintAuthority',
        ),
      }
    case 15:
      return {
        type: 'burnChecked',
        info: authority(
          {
            account: at(accounts, 0),
            mint: at(accounts, 1),
            tokenAmount: uiTokenAmount(amount(), data[9] ?? 0),
          },
          accounts,
          2,
          'authority',
          'multisigAuthority',
        ),
      }
    case 17:
      return { type: 'syncNative', info: { account: at(accounts, 0) } }
    case 21: {
      const info: Record<string, unknown> = { mint: at(accounts, 0) }
      if (instruction.programId === programs.token2022) {
        const types: string[] = []
        for (let offset = 1; offset + 2 <= data.length; offset += 2)
          types.push(extensionNames[view(data).getUint16(offset, true)] ?? 'unparseableExtension')
        info.extensionTypes = types
      }
      return { type: 'getAccountDataSize', info }
    }
    case 22:
      return { type: 'initializeImmutableOwner', info: { account: at(accounts, 0) } }
    default:
      return undefined
  }
}

function parseSystem(
  instruction: ResolvedInstruction,
): { type: string; info: Record<string, unknown> } | undefined {
  const { data, accounts } = instruction
  if (data.length < 4) return undefined
  const tag = view(data).getUint32(0, true)
  if (tag === 0 && data.length >= 52)
    return {
      type: 'createAccount',
      info: {
        source: at(accounts, 0),
        newAccount: at(accounts, 1),
        lamports: Number(u64(data, 4)),
        space: Number(u64(data, 12)),
        owner: key(data, 20),
      },
    }
  if (tag === 1 && data.length >= 36)
    return { type: 'assign', info: { account: at(accounts, 0), owner: key(data, 4) } }
  if (tag === 2 && data.length >= 12)
    return {
      type: 'transfer',
      info: { source: at(accounts, 0), destination: at(accounts, 1), lamports: Number(u64(data, 4)) },
    }
  if (tag === 8 && data.length >= 12)
    return { type: 'allocate', info: { account: at(accounts, 0), space: Number(u64(data, 4)) } }
  return undefined
}

function parseAssociatedToken(instruction: ResolvedInstruction) {
  const { data, accounts } = instruction
  const tag = data.length === 0 ? 0 : data[0]
  const info = {
    source: at(accounts, 0),
    account: at(accounts, 1),
    wallet: at(accounts, 2),
    mint: at(accounts, 3),
    systemProgram: at(accounts, 4),
    tokenProgram: at(accounts, 5),
  }
  if (tag === 0) return { type: 'create', info }
  if (tag === 1) return { type: 'createIdempotent', info }
  return undefined
}

/**
 * Parses an instruction of a program the RPC's `jsonParsed` encoding knows; undefined otherwise, and
 * the caller then shows `{ programId, accounts, data }` as the real RPC does.
 *
 * @example
 * ```ts
 * parseInstruction({ programId: programs.memoV2, accounts: [], data: utf8('thanks') })
 * // { program: 'spl-memo', programId: 'MemoSq…', parsed: 'thanks' }
 * ```
 */
export function parseInstruction(instruction: ResolvedInstruction): ParsedInstruction | undefined {
  const { programId } = instruction
  try {
    if (programId === programs.memoV1 || programId === programs.memoV2 || programId === programs.memoV4) {
      const text = new TextDecoder('utf-8', { fatal: true }).decode(instruction.data)
      return { program: 'spl-memo', programId, parsed: text }
    }
    let parsed: { type: string; info: Record<string, unknown> } | undefined
    let program: string
    if (programId === programs.token || programId === programs.token2022) {
      parsed = parseToken(instruction)
      program = tokenProgramName(programId)
    } else if (programId === programs.system) {
      parsed = parseSystem(instruction)
      program = 'system'
    } else if (programId === programs.associatedToken) {
      parsed = parseAssociatedToken(instruction)
      program = 'spl-associated-token-account'
    } else return undefined
    return parsed ? { program, programId, parsed } : undefined
  } catch {
    // Malformed data: the RPC shows such an instruction unparsed.
    return undefined
  }
}

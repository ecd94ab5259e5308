import {
  AccountRole,
  type Address,
  address,
  appendTransactionMessageInstructions,
  createTransactionMessage,
  getAddressEncoder,
  getProgramDerivedAddress,
  getTransactionEncoder,
  type Instruction,
  type KeyPairSigner,
  pipe,
  setTransactionMessageFeePayerSigner,
  setTransactionMessageLifetimeUsingBlockhash,
  signTransactionMessageWithSigners,
  type TransactionSigner,
} from '@solana/kit'
import { DevnetError } from '../errors.js'
import { createKeypair, type SolanaKeypair } from './keys.js'
import type { Ledger } from './Ledger.js'
import { programs } from './programs.js'

/** What the helpers need from a running node: its ledger and its funded payer. */
export type SolanaNodeHandle = { ledger: Ledger; payer: KeyPairSigner; faucet: KeyPairSigner }

const u64 = (value: bigint) => {
  const bytes = new Uint8Array(8)
  new DataView(bytes.buffer).setBigUint64(0, value, true)
  return bytes
}
const u32 = (value: number) => {
  const bytes = new Uint8Array(4)
  new DataView(bytes.buffer).setUint32(0, value, true)
  return bytes
}
const concat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((length, part) => length + part.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}
const encodeAddress = (value: string) => new Uint8Array(getAddressEncoder().encode(address(value)))

/**
 * Signs and lands a transaction on the node (preflight on), returning its signature.
 *
 * @example
 * ```ts
 * await submit(node, node.payer, [instruction])
 * ```
 */
export async function submit(
  node: SolanaNodeHandle,
  feePayer: TransactionSigner,
  instructions: Instruction[],
): Promise<string> {
  const { blockhash, lastValidBlockHeight } = node.ledger.latestBlockhash()
  const message = pipe(
    createTransactionMessage({ version: 0 }),
    (draft) => setTransactionMessageFeePayerSigner(feePayer, draft),
    (draft) =>
      setTransactionMessageLifetimeUsingBlockhash(
        { blockhash: blockhash as never, lastValidBlockHeight },
        draft,
      ),
    (draft) => appendTransactionMessageInstructions(instructions, draft),
  )
  const signed = await signTransactionMessageWithSigners(message)
  const bytes = new Uint8Array(getTransactionEncoder().encode(signed))
  return node.ledger.process(bytes, { skipPreflight: false }).signature
}

/**
 * A System Program transfer instruction.
 *
 * @example
 * ```ts
 * systemTransfer(from, to, 1_000_000n)
 * ```
 */
export function systemTransfer(
  source: TransactionSigner,
  destination: string,
  lamports: bigint,
): Instruction {
  return {
    programAddress: address(programs.system),
    accounts: [
      { address: source.address, role: AccountRole.WRITABLE_SIGNER, signer: source } as never,
      { address: address(destination), role: AccountRole.WRITABLE },
    ],
    data: concat(u32(2), u64(lamports)),
  }
}

/**
 * Sends lamports from the node's faucet to an address in a real System transfer (recorded, visible
 * to `getTransaction`), which is what `requestAirdrop` does.
 *
 * @example
 * ```ts
 * const signature = await airdrop(node, { address: alice, lamports: 2_000_000_000n })
 * ```
 */
export async function airdrop(
  node: SolanaNodeHandle,
  options: { address: string; lamports: bigint },
): Promise<string> {
  return submit(node, node.faucet, [systemTransfer(node.faucet, options.address, options.lamports)])
}

/**
 * Creates a new keypair funded with lamports (default 10 SOL).
 *
 * @example
 * ```ts
 * const alice = await createFundedAccount(node)
 * const signer = await createKeyPairSignerFromBytes(new Uint8Array(alice.secretKey))
 * ```
 */
export async function createFundedAccount(
  node: SolanaNodeHandle,
  options: { lamports?: bigint } = {},
): Promise<SolanaKeypair> {
  const { keypair } = await createKeypair()
  await airdrop(node, { address: keypair.address, lamports: options.lamports ?? 10_000_000_000n })
  return keypair
}

/** The token program a helper targets. */
export type TokenProgramName = 'token' | 'token-2022'

const tokenProgramId = (program: TokenProgramName | undefined) =>
  program === 'token-2022' ? programs.token2022 : programs.token

/**
 * Derives the associated token account of `owner` for `mint` under a token program.
 *
 * @example
 * ```ts
 * const ata = await findAssociatedTokenAddress({ owner, mint, tokenProgram: programs.token })
 * ```
 */
export async function findAssociatedTokenAddress(options: {
  owner: string
  mint: string
  tokenProgram: string
}): Promise<Address> {
  const [ata] = await getProgramDerivedAddress({
    programAddress: address(programs.associatedToken),
    seeds: [encodeAddress(options.owner), encodeAddress(options.tokenProgram), encodeAddress(options.mint)],
  })
  return ata
}

/**
 * Creates and initializes a mint (SPL Token or Token-2022) whose mint authority is the node's payer
 * unless another is given.
 *
 * @example
 * ```ts
 * const { mint } = await createMint(node, { decimals: 6, program: 'token-2022' })
 * ```
 */
export async function createMint(
  node: SolanaNodeHandle,
  options: { decimals: number; program?: TokenProgramName; mintAuthority?: string; freezeAuthority?: string },
): Promise<{ mint: Address; decimals: number; tokenProgram: Address; signature: string }> {
  if (!Number.isInteger(options.decimals) || options.decimals < 0 || options.decimals > 255)
    throw new DevnetError('decimals must be an integer from 0 to 255', { code: 'solana_invalid_decimals' })
  const tokenProgram = tokenProgramId(options.program)
  const { signer: mint } = await createKeypair()
  const space = 82n
  const rent = node.ledger.svm.minimumBalanceForRentExemption(space)
  const payer = node.payer
  const createAccount: Instruction = {
    programAddress: address(programs.system),
    accounts: [
      { address: payer.address, role: AccountRole.WRITABLE_SIGNER, signer: payer } as never,
      { address: mint.address, role: AccountRole.WRITABLE_SIGNER, signer: mint } as never,
    ],
    data: concat(u32(0), u64(rent), u64(space), encodeAddress(tokenProgram)),
  }
  const freeze = options.freezeAuthority
  // InitializeMint2 (20): decimals, mint authority, COption<freeze authority> with a 1-byte tag.
  const initializeMint: Instruction = {
    programAddress: address(tokenProgram),
    accounts: [{ address: mint.address, role: AccountRole.WRITABLE }],
    data: concat(
      new Uint8Array([20, options.decimals]),
      encodeAddress(options.mintAuthority ?? payer.address),
      freeze ? concat(new Uint8Array([1]), encodeAddress(freeze)) : new Uint8Array(33),
    ),
  }
  const signature = await submit(node, payer, [createAccount, initializeMint])
  return { mint: mint.address, decimals: options.decimals, tokenProgram: address(tokenProgram), signature }
}

/**
 * Mints tokens to `owner`'s associated token account, creating that account first if needed. The
 * node's payer must be the mint authority (the {@link createMint} default).
 *
 * @example
 * ```ts
 * const { tokenAccount } = await mintTo(node, { mint, owner: alice, amount: 1_000_000n })
 * ```
 */
export async function mintTo(
  node: SolanaNodeHandle,
  options: { mint: string; owner: string; amount: bigint },
): Promise<{ tokenAccount: Address; signature: string }> {
  const mintAccount = node.ledger.account(options.mint)
  const decimals = node.ledger.mintDecimals(options.mint)
  if (!mintAccount || decimals === undefined)
    throw new DevnetError('the mint address holds no token mint', { code: 'solana_unknown_mint' })
  const tokenProgram = mintAccount.owner
  const tokenAccount = await findAssociatedTokenAddress({
    owner: options.owner,
    mint: options.mint,
    tokenProgram,
  })
  const payer = node.payer
  const createAta: Instruction = {
    programAddress: address(programs.associatedToken),
    accounts: [
      { address: payer.address, role: AccountRole.WRITABLE_SIGNER, signer: payer } as never,
      { address: tokenAccount, role: AccountRole.WRITABLE },
      { address: address(options.owner), role: AccountRole.READONLY },
      { address: address(options.mint), role: AccountRole.READONLY },
      { address: address(programs.system), role: AccountRole.READONLY },
      { address: address(tokenProgram), role: AccountRole.READONLY },
    ],
    // CreateIdempotent (1): succeeds when the account already exists.
    data: new Uint8Array([1]),
  }
  // MintToChecked (14): amount u64, decimals u8.
  const mintToChecked: Instruction = {
    programAddress: address(tokenProgram),
    accounts: [
      { address: address(options.mint), role: AccountRole.WRITABLE },
      { address: tokenAccount, role: AccountRole.WRITABLE },
      { address: payer.address, role: AccountRole.READONLY_SIGNER, signer: payer } as never,
    ],
    data: concat(new Uint8Array([14]), u64(options.amount), new Uint8Array([decimals])),
  }
  const signature = await submit(node, payer, [createAta, mintToChecked])
  return { tokenAccount, signature }
}

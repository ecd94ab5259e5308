import { type Method, PaymentFailedError } from '@mppkit/core/client'
import {
  AccountRole,
  address,
  appendTransactionMessageInstructions,
  type Blockhash,
  createTransactionMessage,
  getBase64EncodedWireTransaction,
  type Instruction,
  partiallySignTransactionMessageWithSigners,
  pipe,
  setTransactionMessageFeePayer,
  setTransactionMessageFeePayerSigner,
  setTransactionMessageLifetimeUsingBlockhash,
  signTransactionMessageWithSigners,
  type TransactionSigner,
} from '@solana/kit'
import {
  getSetComputeUnitLimitInstruction,
  getSetComputeUnitPriceInstruction,
} from '@solana-program/compute-budget'
import { getAddMemoInstruction } from '@solana-program/memo'
import { getTransferSolInstruction } from '@solana-program/system'
import { getTransferCheckedInstruction } from '@solana-program/token'
import { associatedTokenAddress, expectedLegs } from '../internal/inspect.js'
import { programs } from '../internal/programs.js'
import { createRpc, type Rpc, RpcAnswerError } from '../internal/rpc.js'
import { charge, normalizeNetwork, type SolanaChargeRequest } from '../Methods.js'

/** Options of {@link chargeClient}. */
export type ChargeClientOptions = {
  /** The paying key: a `@solana/kit` signer (e.g. `await generateKeyPairSigner()`). */
  signer: TransactionSigner
  /** JSON-RPC URL (blockhash and mint lookups; push mode sends through it). */
  rpcUrl: string
  /**
   * The cluster this client pays on ("Clients MUST reject challenges whose network does not match").
   * Default: the cluster of the RPC node, told by its genesis hash (mainnet, devnet, testnet; any other
   * is `localnet`), read once.
   */
  network?: 'mainnet' | 'devnet' | 'localnet'
  /** `pull` (default): the server broadcasts; `push`: this client sends and presents the signature. */
  mode?: 'pull' | 'push'
  /** Accept only these payees (recipient and every split recipient), when given. */
  recipients?: readonly string[]
  /** Accept fee sponsorship only from these fee payer keys, when given. */
  feePayerKeys?: readonly string[]
  /** Compute-unit limit set on the transaction (default 200 000). */
  computeUnitLimit?: number
  /** Priority fee in micro-lamports per compute unit (default 1). */
  computeUnitPrice?: bigint
  /** Per-RPC-call timeout in ms (default 10 000). */
  timeout?: number
  /** How long push mode waits for `confirmed`, in ms (default 30 000). */
  confirmTimeout?: number
  /**
   * Lamports this client may spend, beyond the payment, on rent for split recipients' token accounts
   * that a challenge it pays the fees of asks it to create (`ataCreationRequired`; the server closes
   * them and takes the rent back). Default 10 000 000 (0.01 SOL, about four accounts); `0n` refuses
   * every such challenge. Accounts that already exist cost nothing and are not counted.
   */
  maxAccountRentLamports?: bigint
}

/** Genesis hashes of the public clusters (`getGenesisHash`); any other node is a local one. */
const clusters: Record<string, string> = {
  '5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d': 'mainnet',
  EtWTRABZaYq6iMfeYKouRu166VU2xqa1wcaWoxPkrZBG: 'devnet',
  '4uhcVJyU9pJkvQyS88uRDiswHXSCkY3zQawwpjk2NsNY': 'testnet',
}

/** Default of {@link ChargeClientOptions.maxAccountRentLamports}: 0.01 SOL. */
const defaultMaxAccountRent = 10_000_000n

/**
 * Bytes of a token account the rent bound is computed for: a Token account is 165; a Token-2022 one
 * has extensions that depend on its mint, so the bound takes a generous size (it may refuse, never
 * underestimate).
 */
const tokenAccountBytes = (tokenProgram: string) => (tokenProgram === programs.token ? 165 : 400)

/**
 * Creates the client side of `solana/charge`: checks the challenge (network, payees, fee payer, mint
 * program) against its options, builds one transfer per leg (TransferChecked for a mint, a System
 * transfer for SOL) plus the memos and split ATA creations the spec asks for, signs with the kit
 * signer, and either hands the signed transaction to the server (`pull`) or sends it, waits for
 * `confirmed` and presents the signature (`push`).
 *
 * @example
 * ```ts
 * const client = Client.create({ methods: [chargeClient({ signer, rpcUrl, network: 'localnet' })], policy: { maxAmount: 1_000_000n } })
 * ```
 * @see draft-solana-charge-00 §"Client Transaction Construction", §"Client-Side Verification"
 */
export function chargeClient(options: ChargeClientOptions): Method.Client<typeof charge> {
  const rpc: Rpc = createRpc(options.rpcUrl, options.timeout ?? 10_000)
  // `mayHaveSettled`: the transaction was sent, so the transfer may land; the client keeps it booked.
  const refuse = (message: string, mayHaveSettled = false): never => {
    throw new PaymentFailedError(`solana: ${message}`, { mayHaveSettled })
  }
  // The configured cluster, or the node's: a challenge naming another network is never paid, so a
  // spend policy keyed by network (`solana:devnet:…`) cannot be spent on another cluster's funds.
  let cluster: Promise<string> | undefined
  const ownNetwork = (): Promise<string> => {
    if (options.network !== undefined) return Promise.resolve(options.network)
    cluster ??= call(() => rpc<string>('getGenesisHash', [])).then(
      (hash) => clusters[hash] ?? 'localnet',
      (error) => {
        cluster = undefined
        throw error
      },
    )
    return cluster
  }
  return {
    definition: charge,
    quote: (request) => ({
      amount: BigInt(request.amount),
      currency: request.currency,
      network: `solana:${normalizeNetwork(request.methodDetails?.network)}`,
      decimals: request.currency === 'sol' ? 9 : (request.methodDetails?.decimals ?? 0),
    }),
    async createPayload({ request }) {
      const details = request.methodDetails ?? {}
      const network = normalizeNetwork(details.network)
      const own = await ownNetwork()
      if (network !== own) refuse(`the challenge is for ${network}, this client pays on ${own}`)
      if (details.confidential === true) refuse('confidential charges are not supported')
      const payees = [request.recipient, ...(details.splits ?? []).map((split) => split.recipient)]
      // "`recipient` is the expected party"; "`splits` … contain expected recipients"
      if (options.recipients && payees.some((payee) => !options.recipients!.includes(payee)))
        refuse('the challenge pays an unexpected recipient')
      const sponsored = details.feePayer === true
      // "`feePayerKey`, if present, is the expected server"
      if (sponsored && options.feePayerKeys && !options.feePayerKeys.includes(details.feePayerKey!))
        refuse('the challenge names an unexpected fee payer')
      // "The client's account is the transfer authority but NOT the fee payer." A sponsored challenge
      // naming this client's own key would have it sign as fee payer and as payer of every split token
      // account, spending fees and rent that neither the spend policy nor `maxAccountRentLamports`
      // (checked only when the client pays the fees) would count: refused before anything is signed.
      if (sponsored && details.feePayerKey === String(options.signer.address))
        refuse('the challenge names this client as its own fee payer')
      const mode = options.mode ?? 'pull'
      // "Clients MUST use type="transaction" credentials" when feePayer is true.
      if (sponsored && mode === 'push') refuse('push mode cannot be used with a fee-sponsored challenge')
      const tokenProgram = request.currency === 'sol' ? undefined : await tokenProgramFor(request)
      if (tokenProgram && !sponsored) await checkAccountRent(request, tokenProgram)
      const instructions = await buildInstructions(request, tokenProgram, sponsored)
      const blockhash =
        details.recentBlockhash ??
        (
          await call(() =>
            rpc<{ value: { blockhash: string } }>('getLatestBlockhash', [{ commitment: 'confirmed' }]),
          )
        ).value.blockhash
      const message = pipe(
        createTransactionMessage({ version: 0 }),
        (draft) =>
          sponsored
            ? setTransactionMessageFeePayer(address(details.feePayerKey!), draft)
            : setTransactionMessageFeePayerSigner(options.signer, draft),
        (draft) =>
          setTransactionMessageLifetimeUsingBlockhash(
            { blockhash: blockhash as Blockhash, lastValidBlockHeight: 0n },
            draft,
          ),
        (draft) => appendTransactionMessageInstructions(instructions, draft),
      )
      // "When `feePayer` is `true` … the client signs only as transfer authority"
      const signed = sponsored
        ? await partiallySignTransactionMessageWithSigners(message)
        : await signTransactionMessageWithSigners(message)
      const wire = getBase64EncodedWireTransaction(signed)
      const source = String(options.signer.address)
      if (mode === 'pull') return { payload: { type: 'transaction', transaction: wire }, source }
      let signature: string
      try {
        signature = await rpc<string>('sendTransaction', [
          wire,
          { encoding: 'base64', preflightCommitment: 'confirmed' },
        ])
      } catch (error) {
        // A refusal (preflight failed, malformed) sent nothing; a timeout or an unreadable answer may
        // come after the node took the transaction and forwarded it.
        const refused = error instanceof RpcAnswerError
        throw new PaymentFailedError(
          refused
            ? 'solana: the RPC node refused the payment transaction'
            : 'solana: the RPC node did not answer; the payment transaction may have been sent',
          { cause: error, mayHaveSettled: !refused },
        )
      }
      await confirmed(signature)
      return { payload: { type: 'signature', signature }, source }
    },
  }

  async function call<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run()
    } catch (error) {
      throw new PaymentFailedError('solana: the RPC node refused or did not answer', { cause: error })
    }
  }

  async function tokenProgramFor(request: SolanaChargeRequest): Promise<string> {
    const named = request.methodDetails?.tokenProgram
    if (named) return named
    // "clients MUST determine the correct token program by fetching the mint account … If that lookup
    // fails, returns an unexpected owner, or cannot be verified, clients MUST reject the challenge"
    const answer = await call(() =>
      rpc<{ value: { owner: string } | null }>('getAccountInfo', [request.currency, { encoding: 'base64' }]),
    )
    const owner = answer?.value?.owner
    if (owner !== programs.token && owner !== programs.token2022) refuse('the currency is not a token mint')
    return owner!
  }

  async function buildInstructions(
    request: SolanaChargeRequest,
    tokenProgram: string | undefined,
    sponsored: boolean,
  ): Promise<Instruction[]> {
    const { signer } = options
    const details = request.methodDetails ?? {}
    const legs = await expectedLegs(request, tokenProgram)
    const splits = details.splits ?? []
    const out: Instruction[] = [
      getSetComputeUnitLimitInstruction({ units: options.computeUnitLimit ?? 200_000 }),
      getSetComputeUnitPriceInstruction({ microLamports: options.computeUnitPrice ?? 1n }),
    ]
    const memo = (text: string | undefined) => {
      // Memo v2 (MemoSq4…), the program `@solana/mpp` servers accept.
      if (text !== undefined)
        out.push(getAddMemoInstruction({ memo: text }, { programAddress: address(programs.memo) }))
    }
    const source = tokenProgram
      ? await associatedTokenAddress(String(signer.address), request.currency, tokenProgram)
      : undefined
    for (const [index, leg] of legs.entries()) {
      const split = index === 0 ? undefined : splits[index - 1]
      // "the client MUST include an idempotent ATA creation instruction for each split recipient whose
      // split entry sets `ataCreationRequired` to `true`" (never the top-level recipient).
      if (tokenProgram && split?.ataCreationRequired === true)
        out.push(
          createAtaIdempotent(sponsored ? details.feePayerKey! : null, leg, request.currency, tokenProgram),
        )
      if (tokenProgram)
        out.push(
          getTransferCheckedInstruction(
            {
              source: address(source!),
              mint: address(request.currency),
              destination: address(leg.destination),
              authority: signer,
              amount: leg.amount,
              decimals: details.decimals!,
            },
            { programAddress: address(tokenProgram) },
          ),
        )
      else
        out.push(
          getTransferSolInstruction({
            source: signer,
            destination: address(leg.destination),
            amount: leg.amount,
          }),
        )
      // "When present, clients SHOULD include this value [externalId] as a Memo Program instruction"
      memo(index === 0 ? request.externalId : split?.memo)
    }
    return out
  }

  /**
   * Refuses a challenge whose split token accounts this client would fund (it pays the fees: "clients
   * … MUST include one for each split whose entry sets `ataCreationRequired: true`") for more rent than
   * `maxAccountRentLamports`: rent is SOL the spend policy, which sees the token amount, never counts.
   */
  async function checkAccountRent(request: SolanaChargeRequest, tokenProgram: string): Promise<void> {
    const marked = (request.methodDetails?.splits ?? []).filter((split) => split.ataCreationRequired === true)
    if (marked.length === 0) return
    const destinations = await Promise.all(
      marked.map((split) => associatedTokenAddress(split.recipient, request.currency, tokenProgram)),
    )
    const { value: accounts } = await call(() =>
      rpc<{ value: (unknown | null)[] }>('getMultipleAccounts', [destinations, { encoding: 'base64' }]),
    )
    const missing = accounts.filter((account) => account === null).length
    if (missing === 0) return
    const perAccount = BigInt(
      await call(() => rpc<number>('getMinimumBalanceForRentExemption', [tokenAccountBytes(tokenProgram)])),
    )
    const limit = options.maxAccountRentLamports ?? defaultMaxAccountRent
    if (perAccount * BigInt(missing) > limit)
      refuse(
        `the challenge asks this client to fund ${missing} token account(s) for split recipients, up to ${perAccount * BigInt(missing)} lamports of rent, above its limit of ${limit} (maxAccountRentLamports)`,
      )
  }

  function createAtaIdempotent(
    payer: string | null,
    leg: { recipient: string; destination: string },
    mint: string,
    tokenProgram: string,
  ): Instruction {
    const payerMeta = payer
      ? { address: address(payer), role: AccountRole.WRITABLE_SIGNER }
      : { address: options.signer.address, role: AccountRole.WRITABLE_SIGNER, signer: options.signer }
    return {
      programAddress: address(programs.associatedToken),
      accounts: [
        payerMeta as never,
        { address: address(leg.destination), role: AccountRole.WRITABLE },
        { address: address(leg.recipient), role: AccountRole.READONLY },
        { address: address(mint), role: AccountRole.READONLY },
        { address: address(programs.system), role: AccountRole.READONLY },
        { address: address(tokenProgram), role: AccountRole.READONLY },
      ],
      data: new Uint8Array([1]),
    }
  }

  async function confirmed(signature: string): Promise<void> {
    // "clients MUST wait for at least the `confirmed` commitment level before presenting the credential"
    const deadline = Date.now() + (options.confirmTimeout ?? 30_000)
    // Every failure from here on, but a transaction the chain ran and failed (no transfer), comes after
    // the transaction was sent: it may still land.
    for (let delay = 25; Date.now() < deadline; delay = Math.min(delay * 2, 400)) {
      let answer: { value: ({ err: unknown; confirmationStatus: string | null } | null)[] }
      try {
        answer = await rpc('getSignatureStatuses', [[signature]])
      } catch (error) {
        throw new PaymentFailedError(
          `solana: the payment transaction ${signature} was sent, but the RPC node did not tell whether it landed`,
          { cause: error, mayHaveSettled: true },
        )
      }
      const status = answer?.value?.[0]
      if (status?.err) refuse(`the payment transaction ${signature} failed`)
      if (status?.confirmationStatus === 'confirmed' || status?.confirmationStatus === 'finalized') return
      await new Promise((resolve) => setTimeout(resolve, delay))
    }
    refuse(`the payment transaction ${signature} was not confirmed in time`, true)
  }
}

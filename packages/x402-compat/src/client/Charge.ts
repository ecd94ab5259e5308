import { type Method, PaymentFailedError, PolicyError } from '@mppkit/core/client'
import { type Account, type Address, encodeFunctionData, erc20Abi, type Hex, toHex } from 'viem'
import { challengeHash, pkh, sameAddress, typedData } from '../Authorization.js'
import { withTimeout } from '../internal/timeout.js'
import { x402Offers } from '../internal/x402Offers.js'
import { type CredentialType, type EvmChargeRequest, evmCharge } from '../Methods.js'
import * as Permit2 from '../Permit2.js'
import * as X402Eip2612 from '../X402Eip2612.js'
import * as X402Permit2 from '../X402Permit2.js'

/**
 * A viem wallet client with public actions and an account, for the credential types that touch the
 * chain from the client (`transaction`: sign a transfer the server broadcasts; `hash`: broadcast it).
 */
export type Wallet = {
  account: Account | undefined
  chain?: { id: number } | undefined
  prepareTransactionRequest(args: any): Promise<any>
  signTransaction(args: any): Promise<Hex>
  sendRawTransaction(args: { serializedTransaction: Hex }): Promise<Hex>
  waitForTransactionReceipt(args: {
    hash: Hex
    timeout?: number
  }): Promise<{ status: 'success' | 'reverted' }>
  /** A wallet with public actions has it: the client then reads token `decimals()` through it. */
  readContract?(args: any): Promise<unknown>
  getChainId?(): Promise<number>
}

/**
 * Options of {@link charge}.
 *
 * @example
 * ```ts
 * const options: charge.Options = { account, domains: { [usdc]: { name: 'USD Coin', version: '2' } } }
 * ```
 */
export declare namespace charge {
  type Options = {
    /** The payer: any viem account that can sign typed data (a local account, a JSON-RPC account). */
    account: Account & { signTypedData?: unknown }
    /** Chain ids this client pays on (default: any the challenge names). */
    chainIds?: readonly number[]
    /**
     * EIP-712 domain name/version per token address, for challenges that do not carry one in
     * `methodDetails.eip712` (configuration wins over the challenge).
     */
    domains?: Readonly<Record<string, { name: string; version: string }>>
    /** Seconds an authorization stays valid when the challenge has no `expires` (default 300). */
    validitySeconds?: number
    /** Clock (epoch ms; default `Date.now`). */
    now?: () => number
    /**
     * Credential types this client may use, in its order of preference among those a challenge lists
     * (default: every type it can sign with what it was given: `authorization` and `permit2` with the
     * account, `transaction` and `hash` with a `wallet`). The challenge's own order decides first
     * ("Clients SHOULD use the first type in the list that they support").
     */
    credentialTypes?: readonly CredentialType[]
    /** For `transaction` and `hash`: a wallet client (with public actions) on the challenge's chain. */
    wallet?: Wallet
    /** Milliseconds to wait for the receipt of a `hash` payment the client broadcast (default 30 000). */
    confirmTimeout?: number
    /**
     * Decimals of tokens, keyed `eip155:<chainId>:<address>` or `<address>`, for decimal-aware spend
     * policies (a cross-rail budget). These are what the quote carries; a challenge naming other
     * `decimals` for such a token is refused (`PolicyError` reason `decimals`): more of them make an
     * amount look smaller. A token named here is never read on chain.
     */
    decimals?: Readonly<Record<string, number>>
    /**
     * Chain reads (default: `wallet`, when it has public actions): for a token `decimals` does not name,
     * the `decimals` a challenge names (what the quote was priced with) are checked against the token's
     * ERC-20 `decimals()` before anything is signed or sent, and refused (`PolicyError` reason
     * `decimals`) when they differ or cannot be read. A reader on another chain than the challenge's
     * reads nothing (and confirms nothing).
     */
    client?: Reader
    /**
     * x402's `eip2612GasSponsoring` (default true): when an x402 Permit2 offer advertises it and names the
     * token's EIP-712 domain, and the payer's Permit2 allowance (read through the reader) is short, an
     * EIP-2612 permit of the token to Permit2 for exactly the amount is signed beside the Permit2 transfer,
     * for the facilitator to submit (it pays the gas). `false`: such payments are refused, nothing signed
     * (`permit2-allowance`), as for offers without the extension.
     */
    eip2612?: boolean
  }
  /** A viem public client (or wallet client with public actions): what the `evm` client reads on chain. */
  type Reader = {
    chain?: { id: number } | undefined
    readContract(args: any): Promise<unknown>
    /** Asked once when `chain` is not set, so that a reader on another chain is not read. */
    getChainId?(): Promise<number>
  }
}

/** Tokens whose on-chain decimals a client remembers (the oldest is forgotten first). */
const maxCachedDecimals = 256

/** Milliseconds a chain read of `decimals()` may take before the challenge's are unconfirmed. */
const decimalsReadTimeout = 10_000

/** Races `promise` against a timer (a read that never answers must not hold the payment, or the cache). */
const timed = <value>(promise: Promise<value>, ms: number): Promise<value> =>
  withTimeout(promise, ms, () => new PolicyError('decimals', 'evm: the chain did not answer in time'))

/** The configured decimals of `token` on `chainId` (a chain-scoped key first), if any. */
function configuredDecimals(
  table: Readonly<Record<string, number>>,
  chainId: number,
  token: string,
): number | undefined {
  let bare: number | undefined
  for (const [key, value] of Object.entries(table)) {
    const [, id, address] = /^(?:eip155:(\d+):)?(0x[0-9a-fA-F]{40})$/.exec(key) ?? []
    if (!address || !sameAddress(address, token)) continue
    if (id === undefined) bare = value
    else if (Number(id) === chainId) return value
  }
  return bare
}

/** EIP-2612's `nonces(owner)`. */
const noncesAbi = [
  {
    type: 'function',
    name: 'nonces',
    stateMutability: 'view',
    inputs: [{ name: 'owner', type: 'address' }],
    outputs: [{ name: '', type: 'uint256' }],
  },
] as const

/** A refusal to pay, with a stable code. */
const fail = (message: string, code: string) => new PaymentFailedError(`evm: ${message}`, { code })

/** A Permit2 nonce, in decimal: nonces are unordered (a bitmap), so a random 256-bit one never collides in practice. */
const permit2Nonce = () => BigInt(toHex(globalThis.crypto.getRandomValues(new Uint8Array(32)))).toString()

/**
 * The client half of the `evm` charge: picks the first credential type of the challenge it can use and
 * signs it for exactly the amount, token and recipient asked: an EIP-3009 authorization whose nonce is
 * the challenge hash, a Permit2 witness transfer bound to the challenge, a signed ERC-20 `transfer`
 * (the server broadcasts it), or a `transfer` it broadcasts itself (`hash`). Permit2 needs a prior ERC-20
 * approval of the Permit2 contract, which this client never sends on its own; for an x402 offer that
 * advertises `eip2612GasSponsoring` it signs an EIP-2612 permit of exactly the amount instead, which the
 * facilitator submits.
 *
 * @example
 * ```ts
 * import { charge } from '@mppkit/x402-compat/client'
 * const client = Client.create({ methods: [charge({ account })] })
 * ```
 * @see draft-evm-charge-00 §"Credential Types", §"Amount Verification"
 */
export function charge(options: charge.Options): Method.Client<typeof evmCharge> {
  const { account } = options
  const now = options.now ?? Date.now
  const domainOf = (request: EvmChargeRequest) => {
    const configured = Object.entries(options.domains ?? {}).find(([token]) =>
      sameAddress(token, request.currency),
    )
    return configured?.[1] ?? request.methodDetails.eip712
  }
  const able: readonly CredentialType[] =
    options.credentialTypes ??
    (options.wallet ? ['permit2', 'authorization', 'transaction', 'hash'] : ['permit2', 'authorization'])
  const deadlineOf = (challenge: { expires?: string | undefined }) =>
    challenge.expires
      ? Math.floor(Date.parse(challenge.expires) / 1000)
      : Math.floor(now() / 1000) + (options.validitySeconds ?? 300)
  const walletFor = (chainId: number) => {
    const { wallet } = options
    if (!wallet?.account)
      throw fail('transaction and hash credentials need a wallet with an account', 'account')
    if (wallet.chain && wallet.chain.id !== chainId)
      throw fail(
        `the wallet is on chain ${wallet.chain.id}, the challenge on ${chainId}`,
        'unsupported-chain',
      )
    return wallet
  }
  const reader: charge.Reader | undefined =
    options.client ??
    (typeof options.wallet?.readContract === 'function' ? (options.wallet as charge.Reader) : undefined)
  // The reader's chain: asked once (when it does not say), and again after a failed answer.
  let readerChain: Promise<number> | undefined
  const chainOfReader = (read: charge.Reader) => {
    if (read.chain) return Promise.resolve(read.chain.id)
    if (typeof read.getChainId !== 'function') return Promise.resolve(undefined)
    if (readerChain) return readerChain
    const asked = timed(read.getChainId(), decimalsReadTimeout)
    readerChain = asked
    asked.catch(() => {
      if (readerChain === asked) readerChain = undefined
    })
    return asked
  }
  // Decimals read on chain, per chainId and token (successful reads only; reads in flight are shared).
  const onChain = new Map<string, Promise<number>>()
  const chainDecimals = (read: charge.Reader, chainId: number, token: string) => {
    const key = `${chainId}:${token.toLowerCase()}`
    const cached = onChain.get(key)
    if (cached) return cached
    const reading = timed(
      read.readContract({ address: token as Address, abi: erc20Abi, functionName: 'decimals' }),
      decimalsReadTimeout,
    ).then((value) => {
      // ERC-20 `decimals()` is a uint8: anything else is no answer.
      const decimals = typeof value === 'bigint' ? Number(value) : value
      if (typeof decimals !== 'number' || !Number.isInteger(decimals) || decimals < 0 || decimals > 255)
        throw new PolicyError('decimals', 'evm: decimals() did not answer a uint8')
      return decimals
    })
    if (onChain.size >= maxCachedDecimals) onChain.delete(onChain.keys().next().value!)
    onChain.set(key, reading)
    reading.catch(() => {
      if (onChain.get(key) === reading) onChain.delete(key)
    })
    return reading
  }
  /**
   * Before anything is signed or sent: the `decimals` the challenge names, which the quote carried when
   * `options.decimals` names none for the token (a cross-rail budget priced the payment with them), must
   * be the token's on chain. A server naming more of them makes the amount look smaller ("Base Units: The
   * smallest transferable unit of a token, determined by the token's decimal precision"). Without a
   * reader, nothing confirms them (the documented gap); with one, a failed read refuses the payment.
   */
  const confirmDecimals = async (request: EvmChargeRequest) => {
    const { chainId, decimals: advertised } = request.methodDetails
    if (!reader || advertised === undefined) return
    if (configuredDecimals(options.decimals ?? {}, chainId, request.currency) !== undefined) return
    let decimals: number
    try {
      const readerChainId = await chainOfReader(reader)
      if (readerChainId !== undefined && readerChainId !== chainId) return
      decimals = await chainDecimals(reader, chainId, request.currency)
    } catch {
      // No cause: an RPC error may quote the node's URL, credentials included.
      throw new PolicyError(
        'decimals',
        `evm: could not confirm the ${advertised} decimals the challenge names for ${request.currency}: the chain did not answer decimals() on chain ${chainId}`,
      )
    }
    if (decimals !== advertised)
      throw new PolicyError(
        'decimals',
        `evm: the challenge names ${advertised} decimals for ${request.currency}, the chain says ${decimals}`,
      )
  }
  /**
   * x402's Permit2 form (an x402 offer with `extra.assetTransferMethod: "permit2"`, which the x402 plug
   * marks `permit2Witness: "x402"`): a `PermitWitnessTransferFrom` for x402's proxy with x402's witness
   * `(to, validAfter)`, signed as typed data, as `@x402/evm` signs it. Permit2 lets its spender choose
   * where the tokens go, so only x402's proxy (which pays exactly `permitted.amount` to the signed `to`)
   * bounds what the signature can do: any other spender, Permit2 contract or splits are refused. When the
   * payer's Permit2 allowance is short and the offer advertises x402's `eip2612GasSponsoring`, an
   * EIP-2612 permit of the token to Permit2 is signed beside it (owner the payer, value exactly the amount,
   * the token's current nonce, the Permit2 deadline), as `@x402/evm` signs it.
   */
  const x402Permit2 = async (request: EvmChargeRequest, challenge: { expires?: string | undefined }) => {
    const { chainId, spender, permit2Address, splits } = request.methodDetails
    if (spender === undefined || !sameAddress(spender, X402Permit2.proxyAddress))
      throw fail(
        `x402 Permit2 payments are signed for x402's proxy ${X402Permit2.proxyAddress} only, not ${spender}`,
        'unsupported-spender',
      )
    if (permit2Address !== undefined && !sameAddress(permit2Address, Permit2.permit2Address))
      throw fail(
        `x402 Permit2 payments go through Permit2 at ${Permit2.permit2Address} only`,
        'unsupported-permit2',
      )
    if ((splits?.length ?? 0) > 0) throw fail('x402 Permit2 payments carry no splits', 'invalid-splits')
    if (typeof account.signTypedData !== 'function')
      throw fail('the account cannot sign typed data', 'account')
    const sign = (data: unknown) =>
      (account as Account & { signTypedData: (data: unknown) => Promise<Hex> }).signTypedData(data)
    // Everything is read before anything is signed: a refusal leaves no signature behind.
    const allowance = await permit2Allowance(request)
    const short = allowance !== undefined && allowance < BigInt(request.amount)
    const sponsor = short ? sponsorDomain(request) : undefined
    if (short && !sponsor)
      throw fail(
        `${account.address} has not approved Permit2 (${Permit2.permit2Address}) for ${request.amount} of ${request.currency}; nothing was signed (approve it once on the token; this client never does)`,
        'permit2-allowance',
      )
    const permitNonce = sponsor ? await eip2612Nonce(request) : undefined
    const authorization: X402Permit2.Authorization = {
      from: account.address as Address,
      permitted: { token: request.currency as Address, amount: request.amount },
      spender: X402Permit2.proxyAddress,
      nonce: permit2Nonce(),
      // The challenge's `expires`: the offer's `maxTimeoutSeconds` from now, at most `maxValiditySeconds`.
      deadline: String(deadlineOf(challenge)),
      // 0: a payer clock ahead of the chain's can never make the payment not yet valid.
      witness: { to: request.recipient as Address, validAfter: '0' },
    }
    const signature = await sign(X402Permit2.typedData(chainId, authorization))
    if (!sponsor || permitNonce === undefined)
      return { type: 'x402-permit2' as const, permit2Authorization: authorization, signature }
    // x402's proxy reverts unless the approval is exactly the permitted amount: nothing beyond this
    // payment is approved, and the transfer spends all of it. Valid as long as the Permit2 transfer.
    const permit = {
      from: authorization.from,
      asset: request.currency as Address,
      spender: Permit2.permit2Address,
      amount: request.amount,
      nonce: permitNonce.toString(),
      deadline: authorization.deadline,
    }
    const eip2612 = {
      ...permit,
      signature: await sign(X402Eip2612.typedData(chainId, sponsor, permit)),
      version: '1' as const,
    }
    return { type: 'x402-permit2' as const, permit2Authorization: authorization, signature, eip2612 }
  }
  /**
   * The token's EIP-712 domain for an EIP-2612 permit to Permit2, when the x402 offer advertises
   * `eip2612GasSponsoring` (the plug marks it `eip2612`) and this client signs such permits; the
   * configured `domains` win over the offer's.
   */
  const sponsorDomain = (request: EvmChargeRequest) =>
    options.eip2612 !== false && request.methodDetails.eip2612 === true ? domainOf(request) : undefined
  /** The payer's EIP-2612 nonce on the token (`nonces(owner)`), read before the permit is signed. */
  const eip2612Nonce = async (request: EvmChargeRequest): Promise<bigint> => {
    let nonce: unknown
    try {
      nonce = await timed(
        reader!.readContract({
          address: request.currency as Address,
          abi: noncesAbi,
          functionName: 'nonces',
          args: [account.address],
        }),
        decimalsReadTimeout,
      )
    } catch {}
    if (typeof nonce !== 'bigint')
      // No cause: an RPC error may quote the node's URL, credentials included.
      throw fail(
        `could not read the EIP-2612 nonce of ${account.address} on ${request.currency} (chain ${request.methodDetails.chainId}); nothing was signed`,
        'eip2612-nonce',
      )
    return nonce
  }
  /**
   * Before an x402 Permit2 payment is signed: the payer's ERC-20 allowance to Permit2, which must cover the
   * amount (Permit2 moves tokens only under it; x402 facilitators refuse the payment without it, and x402
   * servers answer 412) unless an EIP-2612 permit comes with the payment. Read through the reader
   * (`client`, or a `wallet` with public actions) on the challenge's chain; without one, or with one on
   * another chain, nothing is read (undefined) and the payment is signed and sent as `@x402/evm` does.
   * This client never sends an approval itself.
   */
  const permit2Allowance = async (request: EvmChargeRequest): Promise<bigint | undefined> => {
    const { chainId } = request.methodDetails
    if (!reader) return undefined
    let allowance: unknown
    try {
      const readerChainId = await chainOfReader(reader)
      if (readerChainId !== undefined && readerChainId !== chainId) return undefined
      allowance = await timed(
        reader.readContract({
          address: request.currency as Address,
          abi: erc20Abi,
          functionName: 'allowance',
          args: [account.address, Permit2.permit2Address],
        }),
        decimalsReadTimeout,
      )
    } catch {
      // No cause: an RPC error may quote the node's URL, credentials included.
      throw fail(
        `could not read the Permit2 allowance of ${account.address} for ${request.currency} on chain ${chainId}; nothing was signed`,
        'permit2-allowance',
      )
    }
    return typeof allowance === 'bigint' ? allowance : 0n
  }
  const transfer = async (request: EvmChargeRequest) => {
    const wallet = walletFor(request.methodDetails.chainId)
    const prepared = await wallet.prepareTransactionRequest({
      account: wallet.account,
      to: request.currency,
      data: encodeFunctionData({
        abi: erc20Abi,
        functionName: 'transfer',
        args: [request.recipient as Address, BigInt(request.amount)],
      }),
      type: 'eip1559',
      chain: wallet.chain ?? null,
      chainId: request.methodDetails.chainId,
    })
    // "The client MUST sign a fully valid transaction including gas parameters"
    return wallet.signTransaction({ ...prepared, account: wallet.account })
  }

  return {
    definition: evmCharge,
    quote(request) {
      const quote: Method.Quote = {
        amount: BigInt(request.amount),
        currency: request.currency,
        network: `eip155:${request.methodDetails.chainId}`,
      }
      const { chainId, decimals: advertised } = request.methodDetails
      const known = configuredDecimals(options.decimals ?? {}, chainId, request.currency)
      if (known !== undefined && advertised !== undefined && advertised !== known)
        throw new PolicyError(
          'decimals',
          `evm: the challenge names ${advertised} decimals for ${request.currency}, this client knows ${known}`,
        )
      const decimals = known ?? advertised
      if (decimals !== undefined) quote.decimals = decimals
      return quote
    },
    async createPayload({ challenge, request }) {
      const { chainId, splits } = request.methodDetails
      // "Clients MUST reject challenges whose chainId does not match a chain they support."
      if (options.chainIds && !options.chainIds.includes(chainId))
        throw fail(`chain ${chainId} is not one this client pays on`, 'unsupported-chain')
      // "If omitted, servers MUST accept "transaction" and SHOULD accept "hash"."
      const offered = request.methodDetails.credentialTypes ?? ['transaction', 'hash']
      const hasSplits = (splits?.length ?? 0) > 0
      if (hasSplits) {
        // "The sum of splits[].amount MUST be strictly less than amount. Clients MUST reject any request
        // that violates this constraint."
        const shares = splits!.reduce((sum, split) => sum + BigInt(split.amount), 0n)
        if (shares >= BigInt(request.amount))
          throw fail('the splits add up to the whole amount or more', 'invalid-splits')
      }
      const usable = (type: CredentialType) => {
        if (!able.includes(type)) return false
        // Splits REQUIRE type="permit2".
        if (hasSplits && type !== 'permit2') return false
        if (type === 'authorization') return domainOf(request) !== undefined
        if (type === 'permit2') return request.methodDetails.spender !== undefined
        return options.wallet?.account !== undefined
      }
      // "Clients SHOULD use the first type in the list that they support."
      const type = offered.find(usable)
      if (!type) {
        const reason =
          offered.includes('authorization') && !domainOf(request)
            ? `no EIP-712 domain known for token ${request.currency}`
            : `none of the offered credential types (${offered.join(', ')}) is usable by this client`
        throw fail(
          reason,
          offered.includes('authorization') && !domainOf(request)
            ? 'unknown-domain'
            : 'unsupported-credential-type',
        )
      }
      // The quote was booked with these decimals: checked before any signature or broadcast, so a
      // refusal releases the booking with nothing sent.
      await confirmDecimals(request)
      const source = pkh(
        chainId,
        (type === 'transaction' || type === 'hash' ? options.wallet!.account! : account).address,
      )

      if (type === 'transaction') {
        return { payload: { type, signature: await transfer(request) }, source }
      }
      if (type === 'hash') {
        const wallet = walletFor(chainId)
        const serializedTransaction = await transfer(request)
        let receipt: Awaited<ReturnType<typeof wallet.waitForTransactionReceipt>>
        let hash: Hex
        try {
          hash = await wallet.sendRawTransaction({ serializedTransaction })
          receipt = await wallet.waitForTransactionReceipt({
            hash,
            timeout: options.confirmTimeout ?? 30_000,
          })
        } catch (cause) {
          // Once the signed transfer went to the node, a lost answer or a receipt wait that timed out says
          // nothing about whether it is mined: the client keeps the payment booked (mayHaveSettled), so
          // a retry cannot pay past the spend policy.
          throw new PaymentFailedError('evm: the transfer was sent, but the node did not confirm it', {
            code: 'unconfirmed',
            cause,
            mayHaveSettled: true,
          })
        }
        if (receipt.status !== 'success') throw fail('the transfer reverted', 'transfer-reverted')
        return { payload: { type, hash }, source }
      }
      if (type === 'permit2' && request.methodDetails.permit2Witness === 'x402') {
        // Only for an offer of an x402 service, made by the x402 plug: x402's witness binds no challenge,
        // so a native MPP challenge asking for this form is refused, nothing signed.
        if (!x402Offers.has(challenge))
          throw fail(
            'x402 Permit2 payments are signed only for offers of an x402 service (their witness binds no challenge)',
            'unsupported-credential',
          )
        // The x402 plug sends it as x402's `permit2Authorization` and `signature`; a native MPP server
        // refuses the type (it is no draft-evm-charge-00 credential type).
        return { payload: await x402Permit2(request, challenge), source }
      }
      if (type === 'permit2') {
        if (typeof (account as { sign?: unknown }).sign !== 'function')
          throw fail('permit2 needs an account that signs a digest (a local account)', 'account')
        const total = BigInt(request.amount)
        const shares = (splits ?? []).reduce((sum, split) => sum + BigInt(split.amount), 0n)
        // "Clients MUST emit transfers in array order": the primary transfer, then each split.
        const transfers = [
          { to: request.recipient, amount: String(total - shares) },
          ...(splits ?? []).map((split) => ({ to: split.recipient, amount: split.amount })),
        ]
        const permit = {
          permitted: transfers.map((entry) => ({ token: request.currency, amount: entry.amount })),
          nonce: permit2Nonce(),
          deadline: String(deadlineOf(challenge)),
        }
        const witness = { challengeHash: challengeHash(challenge), externalId: request.externalId ?? '' }
        const hash = Permit2.digest({
          chainId,
          permit2: (request.methodDetails.permit2Address ?? Permit2.permit2Address) as Address,
          spender: request.methodDetails.spender as Address,
          permit,
          witness,
        })
        const signature = await (account as unknown as { sign(args: { hash: Hex }): Promise<Hex> }).sign({
          hash,
        })
        return {
          payload: {
            type,
            permit,
            transferDetails: transfers.map((entry) => ({ to: entry.to, requestedAmount: entry.amount })),
            witness,
            signature,
          },
          source,
        }
      }
      const domain = domainOf(request)!
      if (typeof account.signTypedData !== 'function')
        throw fail('the account cannot sign typed data', 'account')
      // "validBefore SHOULD correspond to the challenge expires timestamp."
      const validBefore = deadlineOf(challenge)
      // validAfter 0: a payer clock ahead of the chain's can never make the authorization not yet valid.
      const authorization = {
        from: account.address as Address,
        to: request.recipient,
        value: request.amount,
        validAfter: '0',
        validBefore: String(validBefore),
        nonce: challengeHash(challenge),
      }
      const signature = await (
        account as Account & { signTypedData: (data: unknown) => Promise<string> }
      ).signTypedData(typedData({ ...domain, chainId, token: request.currency }, authorization))
      return {
        payload: { type: 'authorization' as const, ...authorization, signature },
        source: pkh(chainId, account.address),
      }
    },
  }
}

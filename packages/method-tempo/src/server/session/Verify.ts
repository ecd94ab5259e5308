import { type Method, VerificationFailedError } from '@mppkit/core'
import { type Address, type Hex, isAddressEqual, zeroAddress } from 'viem'
import * as Channel from '../../Channel.js'
import { sameAddress } from '../../internal/bytes.js'
import { assertCanonical } from '../../internal/canonical.js'
import type { session } from '../../Methods.js'
import * as Voucher from '../../Voucher.js'
import type { ChannelState, SessionChain } from './Chain.js'
import type { ChannelStore } from './ChannelStore.js'
import { sessionProblem } from './problems.js'

/** What session `verify` hands to `settle`. */
export type Verified =
  | {
      action: 'open'
      channelId: Hex
      serialized: Hex
      payer: Address
      signer: Address
      amount: bigint
      deposit: bigint
    }
  | {
      action: 'voucher'
      channelId: Hex
      channel: ChannelState
      amount: bigint
      /**
       * The raw stored channel state the voucher was checked against, on a store with `atomic`: settle
       * accepts the voucher only while the store still holds exactly this state.
       */
      channelRaw?: string
    }
  | { action: 'topUp'; channelId: Hex; serialized: Hex; additionalDeposit: bigint; channel: ChannelState }
  | { action: 'close'; channelId: Hex; channel: ChannelState; amount: bigint }

/** Parameters of {@link createVerify}. */
export type VerifyParameters = {
  chain: SessionChain
  channels: ChannelStore
  chainId: number
  escrow: Address
  currency: Address
  payee: Address
}

type Context = Parameters<Method.Server<typeof session>['verify']>[0]

/**
 * "Verify `channel.closeRequestedAt == 0` … Servers MUST reject vouchers on channels with a pending
 * forced close to prevent service delivery that cannot be settled."
 */
function checkNotClosing(channel: Pick<ChannelState, 'closeRequestedAt'>): void {
  if (channel.closeRequestedAt !== '0')
    throw sessionProblem(
      'channel-finalized',
      'Channel Closing',
      410,
      'The payer requested a forced close of this channel.',
    )
}

/** "Verify `cumulativeAmount <= channel.deposit`" */
function checkDeposit(channel: Pick<ChannelState, 'deposit'>, amount: bigint): void {
  if (amount > BigInt(channel.deposit))
    throw sessionProblem(
      'amount-exceeds-deposit',
      'Amount Exceeds Deposit',
      402,
      'The voucher exceeds the channel deposit.',
      { deposit: channel.deposit },
    )
}

/**
 * "`voucher.cumulativeAmount >= channel.settled` (at or above current settlement)": a voucher below
 * the settled amount authorizes nothing the escrow would pay. Decided on a cached state too: `settled`
 * only grows on chain, so a cached copy never refuses a voucher the chain would accept.
 */
export function checkSettled(channel: Pick<ChannelState, 'settled'>, amount: bigint): void {
  if (amount < BigInt(channel.settled))
    throw new VerificationFailedError({
      detail: 'The voucher is below the settled amount.',
      reason: 'amount-not-increasing',
      extensions: { settled: channel.settled },
    })
}

/**
 * Re-runs a verified voucher's checks against a newer state of its channel (settle found the stored
 * state changed since verify): the same signer (the signature was recovered against it), no pending
 * forced close, the amount within the deposit and not below the settled amount.
 *
 * @example
 * ```ts
 * recheckVoucher(verified, channelNow)
 * ```
 */
export function recheckVoucher(
  verified: { channel: Pick<ChannelState, 'signer'>; amount: bigint },
  channel: ChannelState,
): void {
  if (!sameAddress(channel.signer, verified.channel.signer))
    throw sessionProblem(
      'signer-mismatch',
      'Signer Mismatch',
      402,
      'The voucher is not signed by the channel signer.',
    )
  checkNotClosing(channel)
  checkDeposit(channel, verified.amount)
  checkSettled(channel, verified.amount)
}

/**
 * The side-effect-free half of a session server: decodes and checks an `open`, `topUp`, `voucher` or
 * `close` credential against the challenge, the escrow and the channel state, without sending anything.
 *
 * @example
 * ```ts
 * const verify = createVerify({ chain, channels, chainId, escrow, currency, payee })
 * const verified = await verify(context)
 * ```
 * @see draft-tempo-session-00 §8 (Server Verification)
 */
export function createVerify(parameters: VerifyParameters): (context: Context) => Promise<Verified> {
  const { chain, channels, chainId, escrow } = parameters
  const verifier = Voucher.createVerifier()

  const checkSignature = (channelId: Hex, signer: Address, amount: bigint, signature: Hex) => {
    const failure = verifier.verify({
      chainId,
      escrow,
      voucher: { channelId, cumulativeAmount: amount, signature },
      signer,
    })
    if (failure === 'signer-mismatch')
      throw sessionProblem(
        'signer-mismatch',
        'Signer Mismatch',
        402,
        'The voucher is not signed by the channel signer.',
      )
    if (failure)
      throw sessionProblem(
        'invalid-signature',
        'Invalid Signature',
        402,
        `The voucher signature is invalid (${failure}).`,
      )
  }
  const checkVoucher = (
    channelId: Hex,
    channel: Pick<ChannelState, 'signer' | 'deposit'>,
    amount: bigint,
    signature: Hex,
  ) => {
    checkSignature(channelId, channel.signer, amount, signature)
    checkDeposit(channel, amount)
  }

  return async ({ challenge, request, payload, store: s }) => {
    const details = request.methodDetails
    // "A client MUST NOT answer a challenge using a different session protocol than the one indicated"
    if ((details.sessionProtocol ?? 'v1') !== 'v1' || !sameAddress(details.escrowContract, escrow))
      throw new VerificationFailedError({
        detail: 'Only v1 sessions on this escrow are accepted.',
        reason: 'protocol-mismatch',
      })
    const channelId = payload.channelId.toLowerCase() as Hex
    switch (payload.action) {
      case 'open': {
        const { from, call, tx } = chain.decodeCalls(payload.transaction as Hex)
        await assertCanonical(payload.transaction as Hex, tx as Record<string, unknown>)
        if (chain.sponsoredBy(request)) chain.checkSponsorable(tx, challenge.expires)
        if (call.functionName !== 'open')
          throw new VerificationFailedError({
            detail: 'Expected an escrow open call.',
            reason: 'unexpected-call',
          })
        const [callPayee, token, deposit, salt, authorizedSigner] = call.args as [
          Address,
          Address,
          bigint,
          Hex,
          Address,
        ]
        if (!isAddressEqual(callPayee, parameters.payee) || !isAddressEqual(token, parameters.currency))
          throw new VerificationFailedError({
            detail: 'The channel pays another payee or token.',
            reason: 'channel-mismatch',
          })
        // "For v1, the server recovers the `payer` address from the signed transaction and uses it to
        // compute the `channelId` deterministically"
        const computed = Channel.computeId({
          payer: from,
          payee: callPayee,
          token,
          salt,
          authorizedSigner,
          escrow,
          chainId,
        })
        if (computed.toLowerCase() !== channelId)
          throw new VerificationFailedError({
            detail: 'The channel id does not match the open transaction.',
            reason: 'channel-id-mismatch',
          })
        if (
          payload.authorizedSigner &&
          !isAddressEqual(payload.authorizedSigner as Address, authorizedSigner)
        )
          throw new VerificationFailedError({
            detail: 'The authorized signer does not match the transaction.',
            reason: 'signer-mismatch',
          })
        const signer = authorizedSigner === zeroAddress ? from : authorizedSigner
        const amount = BigInt(payload.cumulativeAmount)
        checkSignature(channelId, signer, amount, payload.signature as Hex)
        // "Verify `cumulativeAmount <= channel.deposit`": a channel not open yet will hold the open call's
        // deposit; one already open (its open sent again by a client presenting the channel to a server
        // that lost it, topped up since) holds what the chain says. Settle checks the chain again.
        if (amount > deposit)
          checkDeposit((await chain.readChannel(channelId)) ?? { deposit: String(deposit) }, amount)
        return {
          action: 'open',
          channelId,
          serialized: payload.transaction as Hex,
          payer: from,
          signer,
          amount,
          deposit,
        }
      }
      case 'topUp': {
        const channel = await channels.loadChannel(s, channelId, false)
        const { call, tx } = chain.decodeCalls(payload.transaction as Hex)
        await assertCanonical(payload.transaction as Hex, tx as Record<string, unknown>)
        if (chain.sponsoredBy(request)) chain.checkSponsorable(tx, challenge.expires)
        const unexpected = () =>
          new VerificationFailedError({
            detail: 'Expected an escrow topUp of additionalDeposit on this channel.',
            reason: 'unexpected-call',
          })
        // The name first: another escrow function (a no-argument getter such as `CLOSE_GRACE_PERIOD()`
        // decodes without `args`) is an unexpected call, not a malformed one.
        if (call.functionName !== 'topUp') throw unexpected()
        const [id, additional] = (call.args ?? []) as readonly [Hex?, bigint?]
        if (
          id?.toLowerCase() !== channelId ||
          additional === undefined ||
          additional !== BigInt(payload.additionalDeposit)
        )
          throw unexpected()
        return {
          action: 'topUp',
          channelId,
          serialized: payload.transaction as Hex,
          additionalDeposit: additional,
          channel,
        }
      }
      case 'voucher':
      case 'close': {
        const amount = BigInt(payload.cumulativeAmount)
        // Re-read the escrow when the cached state is older than `channelStateTtl`, whatever the amount:
        // "Servers MUST reject vouchers on channels with a pending forced close", and a repeated voucher
        // must not keep serving a channel that was force-closed or withdrawn since it was cached.
        // On a store with `atomic`, a voucher may use this process's copy of the stored state: settle
        // accepts it only in the same atomic operation that checks the store still holds that state.
        const cached = payload.action === 'voucher' && s.atomic !== undefined
        let { state: channel, raw } = await channels.loadChannelRaw(s, channelId, true, cached)
        // A refusal is never decided on this process's copy alone: another process may have stored a
        // top-up (or a cleared state) since; read the store before refusing.
        if (cached && (channel.closeRequestedAt !== '0' || amount > BigInt(channel.deposit)))
          ({ state: channel, raw } = await channels.loadChannelRaw(s, channelId, true, false))
        if (payload.action === 'voucher') checkNotClosing(channel)
        checkVoucher(channelId, channel, amount, payload.signature as Hex)
        checkSettled(channel, amount)
        if (!cached) return { action: payload.action, channelId, channel, amount }
        return { action: 'voucher', channelId, channel, amount, channelRaw: raw }
      }
    }
  }
}

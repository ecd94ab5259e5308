import { type Address, decodeEventLog, decodeFunctionData, type Hex, isAddressEqual } from 'viem'
import { Abis } from 'viem/tempo'
import * as Attribution from '../Attribution.js'
import type { TempoChargeRequest } from '../Methods.js'

/** One transfer a charge requires. */
export type ExpectedTransfer = { recipient: Address; amount: bigint; memo: Hex | undefined }

/** One observed transfer effect (a call or a log). */
export type TransferEffect = {
  token: Address
  from?: Address | undefined
  recipient: Address
  amount: bigint
  memo: Hex | undefined
}

/**
 * The transfers a charge request requires: the primary recipient gets `amount - sum(splits)`, each split
 * recipient its amount.
 *
 * @see draft-tempo-charge-00 §"Client Behavior" (splits)
 */
export function expectedTransfers(request: TempoChargeRequest): ExpectedTransfer[] {
  const splits = request.methodDetails?.splits ?? []
  const splitTotal = splits.reduce((sum, split) => sum + BigInt(split.amount), 0n)
  return [
    {
      recipient: request.recipient as Address,
      amount: BigInt(request.amount) - splitTotal,
      memo: request.methodDetails?.memo as Hex | undefined,
    },
    ...splits.map((split) => ({
      recipient: split.recipient as Address,
      amount: BigInt(split.amount),
      memo: split.memo as Hex | undefined,
    })),
  ]
}

const same = (a: string, b: string) => {
  try {
    return isAddressEqual(a as Address, b as Address)
  } catch {
    return false
  }
}

/**
 * Matches every expected transfer against distinct observed effects (order is not significant: "Servers
 * MUST verify that the required payment effects are present regardless of call ordering"). A transfer
 * with a required memo only matches a `transferWithMemo` carrying exactly that memo. Returns the matched
 * effects, or `undefined` when one expected transfer has no match.
 */
export function match(
  expected: readonly ExpectedTransfer[],
  effects: readonly TransferEffect[],
  currency: string,
  sender?: string,
): TransferEffect[] | undefined {
  const used = new Set<number>()
  const matched: TransferEffect[] = []
  // Memo-specific transfers first, so a wildcard never takes the effect a memo transfer needs.
  const ordered = [...expected].sort((a, b) => Number(!!b.memo) - Number(!!a.memo))
  for (const transfer of ordered) {
    const index = effects.findIndex(
      (effect, i) =>
        !used.has(i) &&
        same(effect.token, currency) &&
        same(effect.recipient, transfer.recipient) &&
        effect.amount === transfer.amount &&
        (transfer.memo === undefined || effect.memo?.toLowerCase() === transfer.memo.toLowerCase()) &&
        (sender === undefined || effect.from === undefined || same(effect.from, sender)),
    )
    if (index === -1) return undefined
    used.add(index)
    matched.push(effects[index]!)
  }
  return matched
}

/**
 * True when the challenge binding holds: with an explicit server memo the memo itself was required by
 * {@link match}; otherwise at least one matched transfer must carry the attribution memo of this
 * challenge id and realm.
 *
 * @see conformance vectors: "must require auto-generated attribution memos to bind to the credential
 *   challenge id and realm when no explicit server memo is configured"
 */
export function isBound(
  request: TempoChargeRequest,
  matched: readonly TransferEffect[],
  challenge: { id: string; realm: string },
): boolean {
  if (request.methodDetails?.memo !== undefined) return true
  return matched.some(
    (effect) =>
      effect.memo !== undefined &&
      Attribution.isBound(effect.memo, { challengeId: challenge.id, realm: challenge.realm }),
  )
}

/** A raw log as JSON-RPC returns it. */
export type RawLog = { address: string; topics: readonly string[]; data: string }

/**
 * The transfer effects of a receipt's logs: a `TransferWithMemo` and the `Transfer` TIP-20 emits with it
 * count once, as a memo transfer.
 */
export function logEffects(logs: readonly RawLog[]): TransferEffect[] {
  type Decoded = TransferEffect & { kind: 'transfer' | 'memo'; index: number }
  const decoded: Decoded[] = []
  logs.forEach((log, index) => {
    try {
      const event = decodeEventLog({
        abi: Abis.tip20,
        topics: log.topics as [Hex, ...Hex[]],
        data: log.data as Hex,
      })
      if (event.eventName === 'Transfer') {
        const args = event.args as { from: Address; to: Address; amount: bigint }
        decoded.push({
          kind: 'transfer',
          index,
          token: log.address as Address,
          from: args.from,
          recipient: args.to,
          amount: args.amount,
          memo: undefined,
        })
      } else if (event.eventName === 'TransferWithMemo') {
        const args = event.args as { from: Address; to: Address; amount: bigint; memo: Hex }
        decoded.push({
          kind: 'memo',
          index,
          token: log.address as Address,
          from: args.from,
          recipient: args.to,
          amount: args.amount,
          memo: args.memo,
        })
      }
    } catch {
      // Not a TIP-20 transfer event.
    }
  })
  const effects: TransferEffect[] = []
  for (let i = 0; i < decoded.length; i++) {
    const log = decoded[i]!
    const next = decoded[i + 1]
    if (
      next &&
      next.kind !== log.kind &&
      next.index === log.index + 1 &&
      same(next.token, log.token) &&
      same(next.recipient, log.recipient) &&
      next.amount === log.amount &&
      (log.from === undefined || next.from === undefined || same(log.from, next.from))
    ) {
      const memo = log.kind === 'memo' ? log : next
      effects.push({
        token: memo.token,
        from: memo.from,
        recipient: memo.recipient,
        amount: memo.amount,
        memo: memo.memo,
      })
      i++
      continue
    }
    effects.push({
      token: log.token,
      from: log.from,
      recipient: log.recipient,
      amount: log.amount,
      memo: log.memo,
    })
  }
  return effects
}

/**
 * The transfer effects of a transaction's calls, or `undefined` when a call is anything but a TIP-20
 * `transfer`/`transferWithMemo` (the server broadcasts only payment transactions).
 */
export function callEffects(
  calls: readonly { to?: string | null | undefined; data?: string | undefined; value?: bigint | undefined }[],
): TransferEffect[] | undefined {
  const effects: TransferEffect[] = []
  for (const call of calls) {
    if (!call.to || !call.data || (call.value !== undefined && call.value !== 0n)) return undefined
    try {
      const decoded = decodeFunctionData({ abi: Abis.tip20, data: call.data as Hex })
      if (decoded.functionName === 'transfer') {
        const [recipient, amount] = decoded.args as [Address, bigint]
        effects.push({ token: call.to as Address, recipient, amount, memo: undefined })
      } else if (decoded.functionName === 'transferWithMemo') {
        const [recipient, amount, memo] = decoded.args as [Address, bigint, Hex]
        effects.push({ token: call.to as Address, recipient, amount, memo })
      } else return undefined
    } catch {
      return undefined
    }
  }
  return effects
}

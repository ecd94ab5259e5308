import { ConfigurationError, PaymentError } from '@mppkit/core'

/**
 * Stripe Connect settlement parameters: server policy, never part of a challenge and never read from a
 * client. Names follow the spec's `settlementPolicy` example.
 *
 * @example
 * ```ts
 * const settlement: Connect.Settlement = { applicationFeeAmount: 30, transferData: { destination: 'acct_1…' } }
 * ```
 * @see draft-stripe-charge-00 §"Stripe Connect Settlement"
 */
export type Settlement = {
  /** `Stripe-Account`: the connected account the PaymentIntent is created on (a direct charge). */
  stripeAccount?: string
  /** `application_fee_amount`: the platform's fee, in the smallest currency unit. */
  applicationFeeAmount?: number
  /** `on_behalf_of`: the connected account that is the business of record. */
  onBehalfOf?: string
  /** `transfer_data`: a destination charge. */
  transferData?: { destination: string; amount?: number }
  /** `transfer_group`: a reconciliation token derived from an order or invoice (not a secret). */
  transferGroup?: string
}

/**
 * A server setting whose Connect parameters are invalid for this payment: HTTP 500 (the server's
 * configuration is wrong, not the client's credential), raised before any PaymentIntent exists.
 *
 * @example
 * ```ts
 * throw new ConnectSettlementError('application_fee_amount exceeds the PaymentIntent amount')
 * ```
 */
export class ConnectSettlementError extends PaymentError {
  constructor(detail: string) {
    super({
      type: 'about:blank',
      title: 'Internal Server Error',
      status: 500,
      reason: 'connect-settlement-invalid',
      detail: `The server's Stripe Connect settlement parameters are invalid: ${detail}.`,
    })
    this.name = 'Connect.ConnectSettlementError'
  }
}

const accountId = /^acct_[A-Za-z0-9]{1,64}$/

/**
 * Checks Connect parameters against the spec's MUSTs: account ids name connected accounts the server is
 * authorized to use (`authorizedAccounts`), `transfer_data[destination]` is present with `transfer_data`,
 * fee and transfer amounts are non-negative integers no greater than `amount`, `transfer_group` is a
 * plain identifier. With `amount` undefined (configuration time) the amount bounds are skipped.
 *
 * @example
 * ```ts
 * Connect.problems({ applicationFeeAmount: 700 }, { amount: 500, authorizedAccounts: [] }) // ['application_fee_amount …']
 * ```
 * @see draft-stripe-charge-00 §"Stripe Connect Parameter Integrity"
 */
export function problems(
  settlement: Settlement,
  context: { amount: number | undefined; authorizedAccounts: readonly string[] },
): string[] {
  const found: string[] = []
  if (typeof settlement !== 'object' || settlement === null) return ['the settlement must be an object']
  // "Connected account identifiers, including `stripeAccount`, `on_behalf_of`, and
  // `transfer_data[destination]`, MUST refer to connected accounts that the server is authorized to use
  // for the current request."
  const account = (value: unknown, name: string) => {
    if (value === undefined) return
    if (typeof value !== 'string' || !accountId.test(value)) found.push(`${name} is not a Stripe account id`)
    else if (!context.authorizedAccounts.includes(value))
      found.push(`${name} is not one of the server's connectedAccounts`)
  }
  // "`application_fee_amount` / `transfer_data[amount]`, when present, MUST be a non-negative integer no
  // greater than the PaymentIntent `amount`."
  const bounded = (value: unknown, name: string) => {
    if (value === undefined) return
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
      found.push(`${name} must be a non-negative integer`)
    else if (context.amount !== undefined && value > context.amount)
      found.push(`${name} exceeds the PaymentIntent amount`)
  }
  account(settlement.stripeAccount, 'stripeAccount')
  account(settlement.onBehalfOf, 'on_behalf_of')
  bounded(settlement.applicationFeeAmount, 'application_fee_amount')
  if (settlement.transferData !== undefined) {
    // "`transfer_data[destination]` MUST be present when `transfer_data` is present."
    if (typeof settlement.transferData !== 'object' || settlement.transferData === null)
      found.push('transfer_data must be an object')
    else if (settlement.transferData.destination === undefined)
      found.push('transfer_data[destination] is required with transfer_data')
    else {
      account(settlement.transferData.destination, 'transfer_data[destination]')
      bounded(settlement.transferData.amount, 'transfer_data[amount]')
    }
  }
  // "`transfer_group` … MUST be derived from an order, invoice, request, or similar reconciliation
  // identifier and MUST NOT be treated as secret": a plain printable identifier.
  if (
    settlement.transferGroup !== undefined &&
    (typeof settlement.transferGroup !== 'string' || !/^[\x21-\x7e]{1,255}$/.test(settlement.transferGroup))
  )
    found.push('transfer_group must be a printable identifier of at most 255 characters')
  return found
}

/**
 * Validates Connect parameters at configuration time; throws `ConfigurationError` listing every problem.
 *
 * @example
 * ```ts
 * Connect.assertConfiguration({ onBehalfOf: 'acct_1' }, ['acct_1'])
 * ```
 * @see draft-stripe-charge-00 §"Stripe Connect Parameter Integrity"
 */
export function assertConfiguration(settlement: Settlement, authorizedAccounts: readonly string[]): void {
  const found = problems(settlement, { amount: undefined, authorizedAccounts })
  if (found.length > 0) throw new ConfigurationError(`stripe connect: ${found.join('; ')}`)
}

/**
 * Validates Connect parameters for one payment; throws {@link ConnectSettlementError} (HTTP 500, nothing
 * charged) when they break a MUST.
 *
 * @example
 * ```ts
 * Connect.assertSettlement({ applicationFeeAmount: 30 }, { amount: 500, authorizedAccounts: [] })
 * ```
 * @see draft-stripe-charge-00 §"Stripe Connect Parameter Integrity"
 */
export function assertSettlement(
  settlement: Settlement,
  context: { amount: number; authorizedAccounts: readonly string[] },
): void {
  const found = problems(settlement, context)
  if (found.length > 0) throw new ConnectSettlementError(found.join('; '))
}

/**
 * The PaymentIntent create parameters and request options a settlement adds.
 *
 * @example
 * ```ts
 * const { params, options } = Connect.toStripe({ transferData: { destination: 'acct_1', amount: 400 } })
 * ```
 * @see draft-stripe-charge-00 §"Settlement Procedure" (step 2)
 */
export function toStripe(settlement: Settlement | undefined): {
  params: Record<string, unknown>
  options: { stripeAccount?: string }
} {
  const params: Record<string, unknown> = {}
  const options: { stripeAccount?: string } = {}
  if (settlement === undefined) return { params, options }
  if (settlement.applicationFeeAmount !== undefined)
    params.application_fee_amount = settlement.applicationFeeAmount
  if (settlement.onBehalfOf !== undefined) params.on_behalf_of = settlement.onBehalfOf
  if (settlement.transferData !== undefined)
    params.transfer_data = {
      destination: settlement.transferData.destination,
      ...(settlement.transferData.amount !== undefined ? { amount: settlement.transferData.amount } : {}),
    }
  if (settlement.transferGroup !== undefined) params.transfer_group = settlement.transferGroup
  if (settlement.stripeAccount !== undefined) options.stripeAccount = settlement.stripeAccount
  return { params, options }
}

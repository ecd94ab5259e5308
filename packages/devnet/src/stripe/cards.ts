/**
 * Stripe's test PaymentMethod shortcuts (`pm_card_visa`, …) and what each one does when a
 * PaymentIntent is confirmed with it. Names, last4 and outcomes follow Stripe's testing docs
 * (https://docs.stripe.com/testing); messages are Stripe's public decline messages.
 */

/** What confirming a PaymentIntent with a test card does. */
export type CardBehaviour =
  | { kind: 'succeed' }
  | { kind: 'decline'; code: string; declineCode: string; message: string; param?: string }
  | { kind: 'authenticate' }

/** A test card: its public details and its behaviour. */
export type TestCard = {
  brand: string
  last4: string
  funding: 'credit' | 'debit' | 'prepaid'
  behaviour: CardBehaviour
}

const succeed: CardBehaviour = { kind: 'succeed' }
const authenticate: CardBehaviour = { kind: 'authenticate' }
const declined = (declineCode: string, message = 'Your card was declined.'): CardBehaviour => ({
  kind: 'decline',
  code: 'card_declined',
  declineCode,
  message,
})

const generic = declined('generic_decline')
const insufficient = declined('insufficient_funds', 'Your card has insufficient funds.')
const lost = declined('lost_card')
const stolen = declined('stolen_card')

/**
 * The test PaymentMethod ids the simulator knows, keyed by id.
 *
 * @example
 * ```ts
 * testCards.pm_card_visa?.behaviour.kind // 'succeed'
 * ```
 */
export const testCards: Readonly<Record<string, TestCard>> = {
  pm_card_visa: { brand: 'visa', last4: '4242', funding: 'credit', behaviour: succeed },
  pm_card_visa_debit: { brand: 'visa', last4: '5556', funding: 'debit', behaviour: succeed },
  pm_card_mastercard: { brand: 'mastercard', last4: '4444', funding: 'credit', behaviour: succeed },
  pm_card_amex: { brand: 'amex', last4: '8431', funding: 'credit', behaviour: succeed },
  pm_card_chargeDeclined: { brand: 'visa', last4: '0002', funding: 'credit', behaviour: generic },
  pm_card_visa_chargeDeclined: { brand: 'visa', last4: '0002', funding: 'credit', behaviour: generic },
  pm_card_chargeDeclinedInsufficientFunds: {
    brand: 'visa',
    last4: '9995',
    funding: 'credit',
    behaviour: insufficient,
  },
  pm_card_visa_chargeDeclinedInsufficientFunds: {
    brand: 'visa',
    last4: '9995',
    funding: 'credit',
    behaviour: insufficient,
  },
  pm_card_chargeDeclinedLostCard: { brand: 'visa', last4: '9987', funding: 'credit', behaviour: lost },
  pm_card_visa_chargeDeclinedLostCard: { brand: 'visa', last4: '9987', funding: 'credit', behaviour: lost },
  pm_card_chargeDeclinedStolenCard: { brand: 'visa', last4: '9979', funding: 'credit', behaviour: stolen },
  pm_card_visa_chargeDeclinedStolenCard: {
    brand: 'visa',
    last4: '9979',
    funding: 'credit',
    behaviour: stolen,
  },
  pm_card_chargeDeclinedExpiredCard: {
    brand: 'visa',
    last4: '0069',
    funding: 'credit',
    behaviour: {
      kind: 'decline',
      code: 'expired_card',
      declineCode: 'expired_card',
      message: 'Your card has expired.',
      param: 'exp_month',
    },
  },
  pm_card_chargeDeclinedIncorrectCvc: {
    brand: 'visa',
    last4: '0127',
    funding: 'credit',
    behaviour: {
      kind: 'decline',
      code: 'incorrect_cvc',
      declineCode: 'incorrect_cvc',
      message: "Your card's security code is incorrect.",
      param: 'cvc',
    },
  },
  pm_card_chargeDeclinedProcessingError: {
    brand: 'visa',
    last4: '0119',
    funding: 'credit',
    behaviour: {
      kind: 'decline',
      code: 'processing_error',
      declineCode: 'processing_error',
      message: 'An error occurred while processing your card. Try again in a little bit.',
    },
  },
  pm_card_authenticationRequired: {
    brand: 'visa',
    last4: '3184',
    funding: 'credit',
    behaviour: authenticate,
  },
  pm_card_authenticationRequiredOnSetup: {
    brand: 'visa',
    last4: '3155',
    funding: 'credit',
    behaviour: authenticate,
  },
  pm_card_threeDSecure2Required: { brand: 'visa', last4: '3220', funding: 'credit', behaviour: authenticate },
  pm_card_threeDSecureRequired: { brand: 'visa', last4: '3063', funding: 'credit', behaviour: authenticate },
}

/** Stripe's decline for an off-session (or `error_on_requires_action`) payment that needs 3DS. */
export const authenticationRequiredDecline: CardBehaviour = {
  kind: 'decline',
  code: 'authentication_required',
  declineCode: 'authentication_required',
  message: 'Your card was declined. This transaction requires authentication.',
}

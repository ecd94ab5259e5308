/**
 * The challenges the x402 plug made from x402 offers (by identity). x402's Permit2 form carries no
 * challenge binding in its witness (`to`, `validAfter` only), so the `evm` client signs that form only for
 * a challenge in this set: a native MPP server that marks its own challenge `permit2Witness: "x402"`
 * gets a refusal, never an unbound signature.
 */
export const x402Offers = new WeakSet<object>()

// The `invoices` package (an independent BOLT 11 parser the tests check against) ships no types.
declare module 'invoices' {
  /** Decodes a BOLT 11 payment request; the tests read a few documented fields. */
  export function parsePaymentRequest(args: { request: string }): {
    network: string
    destination: string
    id: string
    payment?: string
    mtokens: string
    tokens: number
    description?: string
    cltv_delta: number
    features: { bit: number }[]
    [field: string]: unknown
  }
}

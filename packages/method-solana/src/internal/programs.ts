/** Program ids the charge touches. @see draft-solana-charge-00 §"Method Details", `tokenProgram` */
export const programs = {
  system: '11111111111111111111111111111111',
  token: 'TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA',
  token2022: 'TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb',
  associatedToken: 'ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL',
  computeBudget: 'ComputeBudget111111111111111111111111111111',
  memo: 'MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr',
  memoV1: 'Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo',
  memoV4: 'Memo4c2pN8afCj432Lb7RMVKi9PbQnnW7ewFFaV3oAH',
} as const

/** The two token programs a `tokenProgram` may name. */
export const tokenProgramIds = [programs.token, programs.token2022] as const

/** The Memo program versions a payment may use (v2 is what peers verify; v1 and v4 read the same). */
export const isMemoProgram = (id: string | undefined) =>
  id === programs.memo || id === programs.memoV1 || id === programs.memoV4

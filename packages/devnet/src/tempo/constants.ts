/**
 * Addresses of the TIP-20 stablecoins `anvil --network tempo` predeploys (6 decimals each).
 *
 * @example
 * ```ts
 * import { tip20Tokens } from '@mppkit/devnet'
 * tip20Tokens.pathUsd // '0x20c0000000000000000000000000000000000000'
 * ```
 * @see draft-tempo-charge-00 (TIP-20 `currency`)
 */
export const tip20Tokens = {
  pathUsd: '0x20c0000000000000000000000000000000000000',
  alphaUsd: '0x20c0000000000000000000000000000000000001',
  betaUsd: '0x20c0000000000000000000000000000000000002',
  thetaUsd: '0x20c0000000000000000000000000000000000003',
} as const

/**
 * The symbol each predeployed TIP-20 reports; `startTempo` checks them with a call.
 *
 * @example
 * ```ts
 * tip20Symbols.alphaUsd // 'AlphaUSD'
 * ```
 */
export const tip20Symbols = {
  pathUsd: 'PathUSD',
  alphaUsd: 'AlphaUSD',
  betaUsd: 'BetaUSD',
  thetaUsd: 'ThetaUSD',
} as const satisfies Record<keyof typeof tip20Tokens, string>

/**
 * Explicit gas limits for Tempo (0x76) transactions on anvil, whose `eth_estimateGas` answers a flat
 * 53001 for them: enough for a plain TIP-20 transfer, too little for escrow calls or batches.
 *
 * @example
 * ```ts
 * await Actions.token.transferSync(client, { token, to, amount, gas: tempoGas.transfer })
 * ```
 */
export const tempoGas = {
  /** A TIP-20 `transfer` / `transferWithMemo`. */
  transfer: 200_000n,
  /** An `approve` + escrow `open` batch (new channel storage). */
  open: 1_500_000n,
  /** An `approve` + escrow `topUp` batch. */
  topUp: 800_000n,
  /** Escrow `settle` / `close` / `requestClose` / `withdraw`. */
  settle: 800_000n,
  /** Anything else (contract deployment excluded). */
  default: 2_000_000n,
} as const

/**
 * EIP-712 types of a session voucher: exactly `Voucher(bytes32 channelId,uint128 cumulativeAmount)`.
 *
 * @example
 * ```ts
 * await account.signTypedData({ domain, types: tempoVoucherTypes, primaryType: 'Voucher', message })
 * ```
 * @see draft-tempo-session-00 §"Type Definitions"
 */
export const tempoVoucherTypes = {
  Voucher: [
    { name: 'channelId', type: 'bytes32' },
    { name: 'cumulativeAmount', type: 'uint128' },
  ],
} as const

/**
 * EIP-712 types of an EIP-3009 `transferWithAuthorization`.
 *
 * @example
 * ```ts
 * await account.signTypedData({ domain, types: transferWithAuthorizationTypes, primaryType: 'TransferWithAuthorization', message })
 * ```
 */
export const transferWithAuthorizationTypes = {
  TransferWithAuthorization: [
    { name: 'from', type: 'address' },
    { name: 'to', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'validAfter', type: 'uint256' },
    { name: 'validBefore', type: 'uint256' },
    { name: 'nonce', type: 'bytes32' },
  ],
} as const

/**
 * EIP-712 types of an EIP-3009 `receiveWithAuthorization`.
 *
 * @example
 * ```ts
 * await account.signTypedData({ domain, types: receiveWithAuthorizationTypes, primaryType: 'ReceiveWithAuthorization', message })
 * ```
 */
export const receiveWithAuthorizationTypes = {
  ReceiveWithAuthorization: transferWithAuthorizationTypes.TransferWithAuthorization,
} as const

/**
 * Uniswap Permit2, which `anvil --network tempo` predeploys at its canonical address.
 *
 * @example
 * ```ts
 * permit2Address // '0x000000000022D473030F116dDEE9F6B43aC78BA3'
 * ```
 */
export const permit2Address = '0x000000000022D473030F116dDEE9F6B43aC78BA3' as const

/**
 * x402's fixed address of its `exact` Permit2 proxy (`x402ExactPermit2ProxyAddress` in `@x402/evm`), where
 * `startTempo` places the runtime code of contracts/X402ExactPermit2Proxy.sol.
 *
 * @example
 * ```ts
 * await publicClient.getCode({ address: x402ExactPermit2ProxyAddress }) // the proxy's runtime code
 * ```
 */
export const x402ExactPermit2ProxyAddress = '0x402085c248EeA27D92E8b30b2C58ed07f9E20001' as const

// The page's `createClient` of `viem/tempo` (build.mjs substitutes it in the page bundle only): the same
// viem client with public and wallet actions, without viem's Tempo action decorator, whose actions
// (tokens, DEX, earn, zones…) and their ABIs weigh ~60 KB gzipped. The rails' browser clients use only
// public and wallet actions (getTransactionCount, prepareTransactionRequest, signTransaction,
// sendRawTransactionSync); the Tempo transaction format comes from the chain, which is unchanged.
import {
  type Chain,
  type ClientConfig,
  createClient as createViemClient,
  publicActions,
  type Transport,
  walletActions,
} from 'viem'

/** `viem/tempo`'s createClient minus the Tempo action decorator; chain and transport are required. */
export function createClient(
  parameters: ClientConfig<Transport, Chain> & { chain: Chain; transport: Transport },
) {
  return createViemClient(parameters).extend(publicActions).extend(walletActions)
}

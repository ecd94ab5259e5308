import { type Address, encodeDeployData, type Hex } from 'viem'
import { DevnetError } from '../errors.js'
import type { LightningNodeInfo } from '../lightning/index.js'
import type { SolanaKeypair, SolanaNodeInfo } from '../solana/index.js'
import { programs } from '../solana/programs.js'
import { parseAccounts } from '../tempo/anvil.js'
import { eip3009TokenAbi, eip3009TokenBytecode, streamChannelEscrowBytecode } from '../tempo/artifacts.js'
import { sendUnlockedTransaction, tempoRpc } from '../tempo/clients.js'
import { tip20Tokens, x402ExactPermit2ProxyAddress } from '../tempo/constants.js'
import {
  eip2612Metadata,
  eip2612TokenDeployData,
  placeX402Permit2Proxy,
  type TempoDevnetInfo,
} from '../tempo/index.js'
import { plannedBitcoindRpc } from './plan.js'
import type { StartedContainers } from './start.js'

type Container = StartedContainers['containers'][string]

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

async function poll<T>(what: string, timeoutMs: number, attempt: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      const value = await attempt()
      if (value !== undefined) return value
    } catch (error) {
      lastError = error
    }
    await sleep(250)
  }
  throw new DevnetError(`${what} did not happen within ${timeoutMs} ms`, {
    code: 'devnet_containers_failed',
    cause: lastError,
  })
}

/**
 * Completes a Tempo node that is already listening (an anvil started by someone else, e.g. in a
 * container) into the same info the embedded provider reports: accounts from anvil's banner (the
 * last one deploys, as in `startTempo`), then the session escrow, the EIP-3009 token and the EIP-2612
 * token deployed from the committed artifacts.
 *
 * @example
 * ```ts
 * const info = await completeTempoNode({ rpcUrl, banner: containerOutput, accounts: 10 })
 * ```
 */
export async function completeTempoNode(parameters: {
  rpcUrl: string
  banner: string
  accounts: number
}): Promise<TempoDevnetInfo> {
  const parsed = parseAccounts(parameters.banner)
  if (parsed.length < parameters.accounts + 1)
    throw new DevnetError(`anvil printed ${parsed.length} accounts, expected ${parameters.accounts + 1}`, {
      code: 'devnet_containers_failed',
    })
  const accounts = parsed.slice(0, parameters.accounts)
  const faucet = parsed[parameters.accounts]!.address
  const chainId = Number(
    await poll('eth_chainId', 10_000, () => tempoRpc<Hex>(parameters.rpcUrl, 'eth_chainId', [], 1_000)),
  )
  const eip3009 = { name: 'USD Coin', version: '2', symbol: 'USDC', decimals: 6 }
  const deploy = async (data: Hex): Promise<Address> => {
    const { contractAddress } = await sendUnlockedTransaction(parameters.rpcUrl, {
      from: faucet,
      data,
      gas: 15_000_000n,
    })
    if (!contractAddress)
      throw new DevnetError('deployment returned no address', { code: 'devnet_containers_failed' })
    return contractAddress
  }
  const eip2612 = eip2612Metadata()
  const [escrow, eip3009Token, eip2612Token] = await Promise.all([
    deploy(streamChannelEscrowBytecode),
    deploy(
      encodeDeployData({
        abi: eip3009TokenAbi,
        bytecode: eip3009TokenBytecode,
        args: [
          eip3009.name,
          eip3009.symbol,
          eip3009.version,
          eip3009.decimals,
          accounts.map((account) => account.address),
          1_000_000n * 10n ** 6n,
        ],
      }),
    ),
    deploy(
      eip2612TokenDeployData(
        eip2612,
        accounts.map((account) => account.address),
      ),
    ),
    placeX402Permit2Proxy(parameters.rpcUrl, faucet),
  ])
  return {
    rpcUrl: parameters.rpcUrl,
    chainId,
    accounts,
    tokens: { ...tip20Tokens },
    escrow,
    eip3009Token,
    eip3009,
    eip2612Token,
    eip2612,
    x402Permit2Proxy: x402ExactPermit2ProxyAddress,
    faucet,
  }
}

/**
 * Describes a `solana-test-validator` container in the embedded node's shape.
 *
 * @example
 * ```ts
 * const info = solanaContainerInfo(started.containers.solana!, payer)
 * ```
 */
export function solanaContainerInfo(container: Container, payer: SolanaKeypair): SolanaNodeInfo {
  return {
    rpcUrl: `http://${container.host}:${container.port('rpc')}`,
    wsUrl: `ws://${container.host}:${container.port('ws')}`,
    payer,
    // The validator's default fee rate.
    lamportsPerSignature: 5000,
    programs: {
      system: programs.system,
      token: programs.token,
      token2022: programs.token2022,
      associatedToken: programs.associatedToken,
      memo: programs.memoV2,
      memoV1: programs.memoV1,
      memoV4: programs.memoV4,
      computeBudget: programs.computeBudget,
    },
  }
}

async function readHex(container: Container, path: string): Promise<string> {
  // busybox `od` exists in the alpine-based LND image; the output is hex bytes separated by spaces.
  const result = await container.exec(['od', '-An', '-tx1', '-v', path])
  if (result.exitCode !== 0)
    throw new DevnetError(`cannot read ${path}`, { code: 'devnet_containers_failed' })
  return result.output.replace(/\s/g, '')
}

async function bitcoinCli(bitcoind: Container, ...args: string[]): Promise<string> {
  const result = await bitcoind.exec([
    'bitcoin-cli',
    '-regtest',
    `-rpcuser=${plannedBitcoindRpc.user}`,
    `-rpcpassword=${plannedBitcoindRpc.password}`,
    '-rpcport=18443',
    ...args,
  ])
  if (result.exitCode !== 0)
    throw new DevnetError(`bitcoin-cli ${args[0] ?? ''} failed`, { code: 'devnet_containers_failed' })
  return result.output.trim()
}

/**
 * Turns two fresh LND containers on a regtest bitcoind into a payer → payee channel: reads each
 * node's TLS cert and macaroons, mines 101 blocks to the payer, opens a 5,000,000 sat channel
 * pushing 2,000,000 sat to the payee (so both can pay), mines 6 blocks and waits until it is active.
 *
 * @example
 * ```ts
 * const nodes = await connectLndContainers(started.containers)
 * authenticatedLndGrpc(nodes.payer)
 * ```
 */
export async function connectLndContainers(
  containers: StartedContainers['containers'],
): Promise<{ payer: LightningNodeInfo; payee: LightningNodeInfo }> {
  const {
    authenticatedLndGrpc,
    addPeer,
    createChainAddress,
    getChainBalance,
    getChannels,
    getWalletInfo,
    openChannel,
  } = await import('lightning')
  const bitcoind = containers.bitcoind
  if (!bitcoind) throw new DevnetError('bitcoind container missing', { code: 'devnet_containers_failed' })
  const macaroonDirectory = '/root/.lnd/data/chain/bitcoin/regtest'
  const describe = async (alias: 'payer' | 'payee') => {
    const container = containers[`lnd-${alias}`]
    if (!container)
      throw new DevnetError(`lnd-${alias} container missing`, { code: 'devnet_containers_failed' })
    // --noseedbackup creates the wallet and then writes the macaroons: wait for them.
    const admin = await poll(`${alias} admin.macaroon`, 60_000, () =>
      readHex(container, `${macaroonDirectory}/admin.macaroon`),
    )
    const certificate = await container.exec(['cat', '/root/.lnd/tls.cert'])
    const socket = `${container.host}:${container.port('grpc')}`
    const info = {
      socket,
      cert: Buffer.from(certificate.output).toString('base64'),
      macaroon: admin,
      macaroons: {
        admin,
        readonly: await readHex(container, `${macaroonDirectory}/readonly.macaroon`),
        invoice: await readHex(container, `${macaroonDirectory}/invoice.macaroon`),
      },
      publicKey: '',
      alias,
    } satisfies LightningNodeInfo
    const { lnd } = authenticatedLndGrpc(info)
    return { info, lnd }
  }
  const [payer, payee] = await Promise.all([describe('payer'), describe('payee')])
  const mineTo = async (blocks: number, address: string) => {
    await bitcoinCli(bitcoind, 'generatetoaddress', String(blocks), address)
  }
  const { address } = await createChainAddress({ lnd: payer.lnd, format: 'p2wpkh' })
  // 101 blocks: coinbase outputs mature after 100 confirmations.
  await mineTo(101, address)
  for (const node of [payer, payee]) {
    const wallet = await poll(`${node.info.alias} chain sync`, 60_000, async () => {
      const wallet = await getWalletInfo({ lnd: node.lnd })
      return wallet.is_synced_to_chain ? wallet : undefined
    })
    node.info.publicKey = wallet.public_key
  }
  await poll('payer chain balance', 60_000, async () =>
    (await getChainBalance({ lnd: payer.lnd })).chain_balance > 0 ? true : undefined,
  )
  await addPeer({ lnd: payer.lnd, public_key: payee.info.publicKey, socket: 'lnd-payee:9735' })
  await openChannel({
    lnd: payer.lnd,
    partner_public_key: payee.info.publicKey,
    local_tokens: 5_000_000,
    give_tokens: 2_000_000,
  })
  await poll('channel funding in mempool', 30_000, async () =>
    Number(await bitcoinCli(bitcoind, 'getmempoolinfo').then((text) => JSON.parse(text).size)) > 0
      ? true
      : undefined,
  )
  await mineTo(6, address)
  for (const node of [payer, payee])
    await poll(`${node.info.alias} active channel`, 60_000, async () =>
      (await getChannels({ lnd: node.lnd, is_active: true })).channels.length > 0 ? true : undefined,
    )
  return { payer: payer.info, payee: payee.info }
}

import { randomBytes } from 'node:crypto'
import { createSelfSignedCertificate } from './certificate.js'
import { macaroonOperations, mintMacaroon } from './macaroons.js'
import { LightningNetwork } from './network.js'
import { startNodeServer } from './server.js'

/**
 * How to reach one simulated LND node: exactly the arguments `lightning`'s
 * `authenticatedLndGrpc({ cert, macaroon, socket })` takes, plus the node's identity.
 *
 * @example
 * ```ts
 * const { lnd } = authenticatedLndGrpc(info.nodes.payer)
 * ```
 */
export interface LightningNodeInfo {
  /** `127.0.0.1:<port>` of the node's gRPC server. */
  socket: string
  /** Base64 of the PEM TLS certificate (LND's `tls.cert`, base64 encoded as `lightning` expects). */
  cert: string
  /** Hex admin macaroon (LND's `admin.macaroon`). */
  macaroon: string
  /** Hex macaroons with LND's standard reduced permissions. */
  macaroons: { admin: string; readonly: string; invoice: string }
  /** The node's 33-byte compressed secp256k1 identity key, hex. */
  publicKey: string
  /** The node's alias (`payer`, `payee`, …). */
  alias: string
}

/**
 * Options of {@link startLightning}.
 *
 * @example
 * ```ts
 * const options: StartLightningOptions = { extraNodes: ['carol'], channelBalanceSat: 1_000_000 }
 * ```
 */
export interface StartLightningOptions {
  /** Extra node aliases beyond `payer` and `payee` (each gets its own gRPC server). */
  extraNodes?: readonly string[]
  /** Each node's local channel balance in satoshis (default 1 000 000). */
  channelBalanceSat?: number
  /** Each node's inbound (remote) channel balance in satoshis (default 1 000 000). */
  inboundBalanceSat?: number
  /**
   * When set, payments cross a virtual routing node charging `baseMsat + amount × ratePpm / 10⁶`
   * (default: direct channels, no fee, as between LND channel peers).
   */
  routingFee?: { baseMsat: number; ratePpm: number }
  /** Current block height reported by GetInfo and used for HTLC expiries (default 200). */
  blockHeight?: number
}

/**
 * A running Lightning simulator.
 *
 * @example
 * ```ts
 * const lightning = await startLightning()
 * await lightning.stop()
 * ```
 */
export interface Lightning {
  info: { nodes: { payer: LightningNodeInfo; payee: LightningNodeInfo } & Record<string, LightningNodeInfo> }
  /** Stops every node's gRPC server and timer. Safe to call twice. */
  stop(): Promise<void>
}

/**
 * Starts an in-memory Lightning network of LND-compatible nodes (`payer`, `payee`, and any
 * `extraNodes`), each served over gRPC on `127.0.0.1` from LND's own `.proto` files with a fresh
 * ECDSA P-256 TLS certificate and macaroons minted from its own root key. Invoices are BOLT 11
 * (`lnbcrt…`) signed with the node's secp256k1 key; payments move channel balances and return
 * the SHA-256 preimage. Unmodified `lightning` / `ln-service` clients work against it.
 *
 * @example
 * ```ts
 * import { authenticatedLndGrpc, createInvoice, pay } from 'lightning'
 * const lightning = await startLightning()
 * const payee = authenticatedLndGrpc(lightning.info.nodes.payee).lnd
 * const payer = authenticatedLndGrpc(lightning.info.nodes.payer).lnd
 * const invoice = await createInvoice({ lnd: payee, tokens: 100 })
 * const { secret } = await pay({ lnd: payer, request: invoice.request })
 * await lightning.stop()
 * ```
 */
export async function startLightning(options: StartLightningOptions = {}): Promise<Lightning> {
  const network = new LightningNetwork({
    blockHeight: options.blockHeight ?? 200,
    routingFee: options.routingFee
      ? { baseMsat: BigInt(options.routingFee.baseMsat), ratePpm: BigInt(options.routingFee.ratePpm) }
      : undefined,
  })
  const balances = {
    localMsat: BigInt(options.channelBalanceSat ?? 1_000_000) * 1000n,
    remoteMsat: BigInt(options.inboundBalanceSat ?? 1_000_000) * 1000n,
  }
  const aliases = [
    'payer',
    'payee',
    ...(options.extraNodes ?? []).filter((alias) => alias !== 'payer' && alias !== 'payee'),
  ]
  const servers: Array<() => Promise<void>> = []
  const nodes: Record<string, LightningNodeInfo> = {}
  let stopped = false
  const stop = async () => {
    if (stopped) return
    stopped = true
    await Promise.all(servers.map((stopServer) => stopServer()))
    network.stop()
  }
  try {
    for (const alias of aliases) {
      const node = network.addNode(alias, balances)
      const { certificate, privateKey } = createSelfSignedCertificate({ commonName: alias })
      const rootKey = randomBytes(32)
      const { port, stop: stopServer } = await startNodeServer({ node, rootKey, certificate, privateKey })
      servers.push(stopServer)
      const macaroons = {
        admin: mintMacaroon({ rootKey, operations: macaroonOperations.admin }).toString('hex'),
        readonly: mintMacaroon({ rootKey, operations: macaroonOperations.readonly }).toString('hex'),
        invoice: mintMacaroon({ rootKey, operations: macaroonOperations.invoice }).toString('hex'),
      }
      nodes[alias] = {
        socket: `127.0.0.1:${port}`,
        cert: Buffer.from(certificate).toString('base64'),
        macaroon: macaroons.admin,
        macaroons,
        publicKey: node.publicKey,
        alias,
      }
    }
  } catch (error) {
    await stop()
    throw error
  }
  return {
    info: { nodes: nodes as Lightning['info']['nodes'] },
    stop,
  }
}

export { decodePaymentRequest, encodePaymentRequest, type PaymentRequest } from './bolt11.js'
export { createSelfSignedCertificate, type SelfSignedCertificate } from './certificate.js'
export { macaroonOperations, mintMacaroon } from './macaroons.js'

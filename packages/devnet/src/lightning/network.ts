import { createHash, randomBytes } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { secp256k1 } from '@noble/curves/secp256k1'
import { DevnetError } from '../errors.js'
import { decodePaymentRequest, encodePaymentRequest, type PaymentRequest } from './bolt11.js'

/**
 * gRPC status codes this simulator answers with (the values of `@grpc/grpc-js`'s `status`).
 *
 * @example
 * ```ts
 * new LightningRpcError(grpcCode.notFound, 'unable to locate invoice')
 * ```
 */
export const grpcCode = { unknown: 2, invalidArgument: 3, notFound: 5, alreadyExists: 6 } as const

/**
 * A failure answered to a gRPC caller with LND's status code and LND's own error text, so client
 * libraries that match on `err.details` (as `lightning` does) behave as against LND.
 *
 * @example
 * ```ts
 * throw new LightningRpcError(grpcCode.notFound, 'unable to locate invoice')
 * ```
 */
export class LightningRpcError extends DevnetError {
  override name = 'LightningRpcError'
  readonly grpcCode: number
  constructor(code: number, details: string) {
    super(details, { code: 'lightning_rpc_error' })
    this.grpcCode = code
  }
}

/**
 * Invoice states, spelled as `lnrpc.Invoice.InvoiceState`.
 *
 * @example
 * ```ts
 * const state: InvoiceState = 'ACCEPTED' // a hold invoice with an HTLC waiting for SettleInvoice
 * ```
 */
export type InvoiceState = 'OPEN' | 'SETTLED' | 'CANCELED' | 'ACCEPTED'
/**
 * Payment states, spelled as `lnrpc.Payment.PaymentStatus`.
 *
 * @example
 * ```ts
 * const status: PaymentStatus = 'SUCCEEDED'
 * ```
 */
export type PaymentStatus = 'IN_FLIGHT' | 'SUCCEEDED' | 'FAILED'
/**
 * Failure reasons, spelled as `lnrpc.PaymentFailureReason`.
 *
 * @example
 * ```ts
 * const reason: FailureReason = 'FAILURE_REASON_INCORRECT_PAYMENT_DETAILS'
 * ```
 */
export type FailureReason =
  | 'FAILURE_REASON_NONE'
  | 'FAILURE_REASON_NO_ROUTE'
  | 'FAILURE_REASON_INCORRECT_PAYMENT_DETAILS'
  | 'FAILURE_REASON_INSUFFICIENT_BALANCE'
  | 'FAILURE_REASON_TIMEOUT'

/**
 * One HTLC paying an invoice (`lnrpc.InvoiceHTLC`).
 *
 * @example
 * ```ts
 * const settled = invoice.htlcs.filter((htlc: InvoiceHtlcRecord) => htlc.state === 'SETTLED')
 * ```
 */
export interface InvoiceHtlcRecord {
  channelId: string
  htlcIndex: number
  amountMsat: bigint
  acceptHeight: number
  acceptTime: number
  resolveTime: number
  expiryHeight: number
  state: 'ACCEPTED' | 'SETTLED' | 'CANCELED'
  totalMsat: bigint
}

/**
 * An invoice held by a simulated node, the data behind `lnrpc.Invoice`.
 *
 * @example
 * ```ts
 * const invoice: InvoiceRecord = node.lookupInvoice(paymentHash)
 * ```
 */
export interface InvoiceRecord {
  paymentHash: Buffer
  /** Unknown to the node for a hold invoice until `SettleInvoice`. */
  preimage: Buffer | undefined
  paymentAddress: Buffer
  paymentRequest: string
  memo: string
  descriptionHash: Buffer
  valueMsat: bigint
  creationDate: number
  expirySeconds: number
  cltvExpiry: number
  fallbackAddress: string
  isPrivate: boolean
  isHold: boolean
  state: InvoiceState
  settleDate: number
  addIndex: number
  settleIndex: number
  amountPaidMsat: bigint
  htlcs: InvoiceHtlcRecord[]
  features: number[]
}

/**
 * One hop of a payment route (`lnrpc.Hop`).
 *
 * @example
 * ```ts
 * const [lastHop] = payment.route.hops.slice(-1) as HopRecord[]
 * ```
 */
export interface HopRecord {
  channelId: string
  publicKey: string
  amountToForwardMsat: bigint
  feeMsat: bigint
  expiry: number
}

/**
 * A payment made by a simulated node, the data behind `lnrpc.Payment`.
 *
 * @example
 * ```ts
 * const payment: PaymentRecord = node.sendPayment({ paymentRequest, amountMsat: 0n, feeLimitMsat: 1_000n })
 * ```
 */
export interface PaymentRecord {
  paymentHash: Buffer
  paymentRequest: string
  valueMsat: bigint
  feeMsat: bigint
  creationTimeNs: bigint
  paymentIndex: number
  status: PaymentStatus
  failureReason: FailureReason
  preimage: Buffer | undefined
  route: { hops: HopRecord[]; totalTimeLock: number; paymentAddress: Buffer | undefined }
  attemptTimeNs: bigint
  resolveTimeNs: bigint
}

/**
 * Settings of the in-memory network.
 *
 * @example
 * ```ts
 * const settings: NetworkSettings = { blockHeight: 200, routingFee: { baseMsat: 1_000n, ratePpm: 1n } }
 * ```
 */
export interface NetworkSettings {
  blockHeight: number
  /** When set, payments cross a virtual routing node charging this fee. */
  routingFee: { baseMsat: bigint; ratePpm: bigint } | undefined
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest()
const nowSeconds = () => Math.floor(Date.now() / 1000)
const nowNs = () => BigInt(Date.now()) * 1_000_000n
/**
 * LND's default invoice feature bits: tlv-onion (8) and payment-addr (14) required, MPP (17) and
 * route blinding (25) optional.
 *
 * @example
 * ```ts
 * invoiceFeatures.includes(14) // payment secret required
 * ```
 */
export const invoiceFeatures = [8, 14, 17, 25]
/** Final CLTV delta written into invoices when the caller sets none (LND's default time-lock delta, 80). */
const defaultCltvExpiry = 80
/** LND: "If the expiry is not set, a default of 86400 seconds (24 hours) is used." */
const defaultExpirySeconds = 86_400
/** LND's largest invoice expiry: one year. */
const maxExpirySeconds = 365 * 86_400
/** setTimeout's limit; invoices expiring later are expired lazily when read. */
const maxTimer = 2_147_483_647

/**
 * One simulated LND node: identity key, channel balances, invoices and payments. Its gRPC face is
 * built by `server.ts`; everything here is transport-free so the rules are in one place.
 *
 * @example
 * ```ts
 * const invoice = node.addInvoice({ valueMsat: 10_000n, memo: 'coffee' })
 * ```
 */
export class SimulatedNode {
  readonly privateKey: Uint8Array
  readonly publicKey: string
  /** Emits `invoice` with an {@link InvoiceRecord} on every state change, `payment:<hash hex>` with a {@link PaymentRecord}. */
  readonly events = new EventEmitter()
  readonly invoices = new Map<string, InvoiceRecord>()
  readonly payments = new Map<string, PaymentRecord>()
  localMsat: bigint
  remoteMsat: bigint
  unsettledLocalMsat = 0n
  unsettledRemoteMsat = 0n
  private addIndex = 0
  private settleIndex = 0
  private paymentIndex = 0
  private htlcIndex = 0
  private readonly timers = new Set<NodeJS.Timeout>()

  constructor(
    readonly alias: string,
    readonly channelId: string,
    readonly network: LightningNetwork,
    balances: { localMsat: bigint; remoteMsat: bigint },
  ) {
    this.privateKey = secp256k1.utils.randomPrivateKey()
    this.publicKey = Buffer.from(secp256k1.getPublicKey(this.privateKey, true)).toString('hex')
    this.localMsat = balances.localMsat
    this.remoteMsat = balances.remoteMsat
    this.events.setMaxListeners(0)
  }

  /** Creates an invoice (AddInvoice / AddHoldInvoice). */
  addInvoice(parameters: {
    valueMsat: bigint
    memo?: string
    preimage?: Buffer | undefined
    hash?: Buffer | undefined
    descriptionHash?: Buffer | undefined
    expirySeconds?: number
    cltvExpiry?: number
    fallbackAddress?: string
    isPrivate?: boolean
  }): InvoiceRecord {
    const memo = parameters.memo ?? ''
    // LND: "memo too large: ... max 1024"; BOLT 11 limits `d` to 639 bytes.
    if (Buffer.byteLength(memo) > 639)
      throw new LightningRpcError(grpcCode.unknown, 'memo too large: maximum size is 639 bytes')
    if (parameters.valueMsat < 0n)
      throw new LightningRpcError(grpcCode.unknown, 'payments of negative value are not allowed')
    if (parameters.preimage && parameters.preimage.length !== 32) {
      throw new LightningRpcError(grpcCode.unknown, 'payment preimage must be 32 bytes')
    }
    if (parameters.hash && parameters.hash.length !== 32) {
      throw new LightningRpcError(grpcCode.unknown, 'payment hash must be 32 bytes')
    }
    if (
      parameters.descriptionHash &&
      parameters.descriptionHash.length > 0 &&
      parameters.descriptionHash.length !== 32
    ) {
      throw new LightningRpcError(grpcCode.unknown, 'description hash is 32 bytes')
    }
    const isHold = parameters.hash !== undefined
    // "The preimage ... random 32 bytes" when the caller gives none; payment_hash = SHA-256(preimage).
    const preimage = isHold ? undefined : (parameters.preimage ?? randomBytes(32))
    const paymentHash = parameters.hash ?? sha256(preimage ?? Buffer.alloc(0))
    const key = paymentHash.toString('hex')
    if (this.invoices.has(key)) {
      // The text `lightning`'s createInvoice matches to answer 409 InvoiceWithGivenHashAlreadyExists.
      throw new LightningRpcError(grpcCode.unknown, 'invoice with payment hash already exists')
    }
    // LND (invoicesrpc.AddInvoice): "we'll reject an invoice with an expiry greater than 1 year".
    if (parameters.expirySeconds !== undefined && parameters.expirySeconds > maxExpirySeconds) {
      throw new LightningRpcError(
        grpcCode.unknown,
        `expiry of ${parameters.expirySeconds} seconds greater than max expiry of ${maxExpirySeconds} seconds`,
      )
    }
    const creationDate = nowSeconds()
    const expirySeconds =
      parameters.expirySeconds && parameters.expirySeconds > 0
        ? parameters.expirySeconds
        : defaultExpirySeconds
    const cltvExpiry =
      parameters.cltvExpiry && parameters.cltvExpiry > 0 ? parameters.cltvExpiry : defaultCltvExpiry
    const paymentAddress = randomBytes(32)
    const descriptionHash =
      parameters.descriptionHash && parameters.descriptionHash.length === 32
        ? parameters.descriptionHash
        : undefined
    const paymentRequest = encodePaymentRequest(
      {
        currency: 'bcrt',
        amountMsat: parameters.valueMsat === 0n ? undefined : parameters.valueMsat,
        timestamp: creationDate,
        paymentHash,
        paymentSecret: paymentAddress,
        description: memo,
        descriptionHash,
        expirySeconds,
        minFinalCltvExpiry: cltvExpiry,
        features: invoiceFeatures,
      },
      this.privateKey,
    )
    const invoice: InvoiceRecord = {
      paymentHash,
      preimage,
      paymentAddress,
      paymentRequest,
      memo,
      descriptionHash: descriptionHash ?? Buffer.alloc(0),
      valueMsat: parameters.valueMsat,
      creationDate,
      expirySeconds,
      cltvExpiry,
      fallbackAddress: parameters.fallbackAddress ?? '',
      isPrivate: parameters.isPrivate ?? false,
      isHold,
      state: 'OPEN',
      settleDate: 0,
      addIndex: ++this.addIndex,
      settleIndex: 0,
      amountPaidMsat: 0n,
      htlcs: [],
      features: invoiceFeatures,
    }
    this.invoices.set(key, invoice)
    // LND's invoice expiry watcher cancels open invoices when they expire.
    const delay = expirySeconds * 1000
    if (delay <= maxTimer) {
      const timer = setTimeout(() => {
        this.timers.delete(timer)
        this.expireIfDue(invoice)
      }, delay + 50)
      timer.unref()
      this.timers.add(timer)
    }
    this.events.emit('invoice', invoice)
    return invoice
  }

  private expireIfDue(invoice: InvoiceRecord) {
    if (invoice.state === 'OPEN' && Date.now() >= (invoice.creationDate + invoice.expirySeconds) * 1000) {
      invoice.state = 'CANCELED'
      this.events.emit('invoice', invoice)
    }
  }

  /** Finds an invoice by payment hash (LookupInvoice), expiring it first when due. */
  lookupInvoice(paymentHash: Buffer): InvoiceRecord {
    if (paymentHash.length !== 32) {
      throw new LightningRpcError(
        grpcCode.invalidArgument,
        `payment hash must be exactly 32 bytes, is ${paymentHash.length}`,
      )
    }
    const invoice = this.invoices.get(paymentHash.toString('hex'))
    if (!invoice) throw new LightningRpcError(grpcCode.notFound, 'unable to locate invoice')
    this.expireIfDue(invoice)
    return invoice
  }

  /** Settles an accepted hold invoice with its preimage (invoicesrpc.SettleInvoice). */
  settleInvoice(preimage: Buffer): void {
    const invoice = this.invoices.get(sha256(preimage).toString('hex'))
    // The texts `lightning`'s settleHodlInvoice matches: 404 and 402.
    if (!invoice || preimage.length !== 32)
      throw new LightningRpcError(grpcCode.unknown, 'unable to locate invoice')
    if (invoice.state === 'SETTLED') return
    if (invoice.state === 'OPEN') throw new LightningRpcError(grpcCode.unknown, 'invoice still open')
    if (invoice.state === 'CANCELED')
      throw new LightningRpcError(grpcCode.unknown, 'invoice already canceled')
    invoice.preimage = preimage
    this.resolveAccepted(invoice, 'SETTLED')
  }

  /** Cancels an open or accepted invoice (invoicesrpc.CancelInvoice). */
  cancelInvoice(paymentHash: Buffer): void {
    const invoice = this.invoices.get(paymentHash.toString('hex'))
    if (!invoice) throw new LightningRpcError(grpcCode.unknown, 'unable to locate invoice')
    if (invoice.state === 'SETTLED') throw new LightningRpcError(grpcCode.unknown, 'invoice already settled')
    if (invoice.state === 'CANCELED') return
    if (invoice.state === 'ACCEPTED') {
      this.resolveAccepted(invoice, 'CANCELED')
      return
    }
    invoice.state = 'CANCELED'
    this.events.emit('invoice', invoice)
  }

  private resolveAccepted(invoice: InvoiceRecord, outcome: 'SETTLED' | 'CANCELED') {
    const resolveTime = nowSeconds()
    for (const htlc of invoice.htlcs) {
      if (htlc.state !== 'ACCEPTED') continue
      htlc.state = outcome
      htlc.resolveTime = resolveTime
    }
    invoice.state = outcome
    if (outcome === 'SETTLED') {
      invoice.settleDate = resolveTime
      invoice.settleIndex = ++this.settleIndex
    } else {
      invoice.amountPaidMsat = 0n
    }
    this.events.emit('invoice', invoice)
    this.events.emit(`resolved:${invoice.paymentHash.toString('hex')}`, outcome)
  }

  /**
   * Receives an HTLC for one of this node's invoices, applying LND's invoice registry checks, and
   * resolves with the preimage (or `undefined` when the HTLC is failed back).
   */
  receiveHtlc(parameters: {
    paymentHash: Buffer
    amountMsat: bigint
    paymentAddress: Buffer | undefined
    expiryHeight: number
  }): { accepted: false } | { accepted: true; settled: Promise<Buffer | undefined> } {
    const invoice = this.invoices.get(parameters.paymentHash.toString('hex'))
    if (!invoice) return { accepted: false }
    this.expireIfDue(invoice)
    // Registry: only an OPEN invoice accepts a new HTLC set (settled: "invoice already paid",
    // canceled/expired: "invoice already canceled"); the payment secret must match (BOLT 4
    // "payment_secret ... MUST fail the HTLC if it doesn't match"); and "the amount paid MUST NOT be
    // less than the invoice amount" nor (LND) more than twice it.
    if (invoice.state !== 'OPEN') return { accepted: false }
    if (!parameters.paymentAddress?.equals(invoice.paymentAddress)) return { accepted: false }
    if (
      invoice.valueMsat > 0n &&
      (parameters.amountMsat < invoice.valueMsat || parameters.amountMsat > invoice.valueMsat * 2n)
    ) {
      return { accepted: false }
    }
    if (parameters.expiryHeight < this.network.settings.blockHeight + invoice.cltvExpiry)
      return { accepted: false }
    const now = nowSeconds()
    const htlc: InvoiceHtlcRecord = {
      channelId: this.channelId,
      htlcIndex: this.htlcIndex++,
      amountMsat: parameters.amountMsat,
      acceptHeight: this.network.settings.blockHeight,
      acceptTime: now,
      resolveTime: 0,
      expiryHeight: parameters.expiryHeight,
      state: 'ACCEPTED',
      totalMsat: parameters.amountMsat,
    }
    invoice.htlcs.push(htlc)
    invoice.amountPaidMsat = parameters.amountMsat
    this.remoteMsat -= parameters.amountMsat
    this.unsettledRemoteMsat += parameters.amountMsat
    const settled = new Promise<Buffer | undefined>((resolve) => {
      this.events.once(
        `resolved:${invoice.paymentHash.toString('hex')}`,
        (outcome: 'SETTLED' | 'CANCELED') => {
          this.unsettledRemoteMsat -= parameters.amountMsat
          if (outcome === 'SETTLED') this.localMsat += parameters.amountMsat
          else this.remoteMsat += parameters.amountMsat
          resolve(outcome === 'SETTLED' ? invoice.preimage : undefined)
        },
      )
    })
    if (invoice.isHold) {
      // A hold invoice waits in ACCEPTED until SettleInvoice or CancelInvoice.
      invoice.state = 'ACCEPTED'
      this.events.emit('invoice', invoice)
    } else {
      this.resolveAccepted(invoice, 'SETTLED')
    }
    return { accepted: true, settled }
  }

  /** Decodes a payment request for this node's network (DecodePayReq and SendPaymentV2). */
  decode(paymentRequest: string): PaymentRequest {
    let request: PaymentRequest
    try {
      request = decodePaymentRequest(paymentRequest)
    } catch (error) {
      throw new LightningRpcError(grpcCode.unknown, (error as Error).message)
    }
    // LND (zpay32.Decode): "invoice not for current active network '%s'".
    if (request.currency !== 'bcrt')
      throw new LightningRpcError(grpcCode.unknown, "invoice not for current active network 'regtest'")
    return request
  }

  /**
   * Starts a payment (routerrpc.SendPaymentV2): validation failures throw with LND's status and
   * text; accepted payments run on their own and publish every state on `payment:<hash>`.
   */
  sendPayment(parameters: {
    paymentRequest: string
    amountMsat: bigint
    feeLimitMsat: bigint
  }): PaymentRecord {
    const request = this.decode(parameters.paymentRequest)
    // LND router backend: "invoice expired. Valid until ..." (an error, no payment is created).
    const expiresAt = (request.timestamp + request.expirySeconds) * 1000
    if (Date.now() > expiresAt) {
      throw new LightningRpcError(
        grpcCode.unknown,
        `invoice expired. Valid until ${new Date(expiresAt).toISOString()}`,
      )
    }
    let amountMsat: bigint
    if (request.amountMsat === undefined) {
      if (parameters.amountMsat <= 0n) {
        throw new LightningRpcError(
          grpcCode.unknown,
          'amount must be specified when paying a zero amount invoice',
        )
      }
      amountMsat = parameters.amountMsat
    } else {
      // LND refuses any amount here, even one equal to the invoice's.
      if (parameters.amountMsat !== 0n) {
        throw new LightningRpcError(
          grpcCode.unknown,
          'amount must not be specified when paying a non-zero amount invoice',
        )
      }
      amountMsat = request.amountMsat
    }
    const key = request.paymentHash.toString('hex')
    const existing = this.payments.get(key)
    // LND control tower: a hash already paid or in flight cannot be paid again (gRPC AlreadyExists).
    if (existing?.status === 'SUCCEEDED')
      throw new LightningRpcError(grpcCode.alreadyExists, 'invoice is already paid')
    if (existing?.status === 'IN_FLIGHT')
      throw new LightningRpcError(grpcCode.alreadyExists, 'payment is in transition')

    const destination = this.network.nodeByKey(request.payee.toString('hex'))
    const { blockHeight, routingFee } = this.network.settings
    const feeMsat = routingFee ? routingFee.baseMsat + (amountMsat * routingFee.ratePpm) / 1_000_000n : 0n
    const finalExpiry = blockHeight + request.minFinalCltvExpiry + 3
    const hops: HopRecord[] = []
    if (destination) {
      if (routingFee) {
        hops.push({
          channelId: this.channelId,
          publicKey: this.network.routerKey,
          amountToForwardMsat: amountMsat,
          feeMsat,
          expiry: finalExpiry + 40,
        })
      }
      hops.push({
        channelId: routingFee ? destination.channelId : this.channelId,
        publicKey: destination.publicKey,
        amountToForwardMsat: amountMsat,
        feeMsat: 0n,
        expiry: finalExpiry,
      })
    }
    const now = nowNs()
    const payment: PaymentRecord = {
      paymentHash: request.paymentHash,
      paymentRequest: parameters.paymentRequest,
      valueMsat: amountMsat,
      feeMsat: 0n,
      creationTimeNs: now,
      paymentIndex: ++this.paymentIndex,
      status: 'IN_FLIGHT',
      failureReason: 'FAILURE_REASON_NONE',
      preimage: undefined,
      route: { hops, totalTimeLock: hops[0]?.expiry ?? 0, paymentAddress: request.paymentSecret },
      attemptTimeNs: now,
      resolveTimeNs: 0n,
    }
    this.payments.set(key, payment)
    const finish = (status: PaymentStatus, reason: FailureReason) => {
      payment.status = status
      payment.failureReason = reason
      payment.resolveTimeNs = nowNs()
      this.events.emit(`payment:${key}`, payment)
    }
    const total = amountMsat + feeMsat
    // Pathfinding: LND first checks its own outgoing bandwidth ("insufficient local balance"),
    // then finds no route to an unknown node or to itself, none within the fee limit ("If
    // fee_limit is zero only zero-fee routes will be considered"), none without enough inbound.
    if (this.localMsat < total) {
      queueMicrotask(() => finish('FAILED', 'FAILURE_REASON_INSUFFICIENT_BALANCE'))
      return payment
    }
    if (
      !destination ||
      destination === this ||
      feeMsat > parameters.feeLimitMsat ||
      destination.remoteMsat < amountMsat
    ) {
      queueMicrotask(() => finish('FAILED', 'FAILURE_REASON_NO_ROUTE'))
      return payment
    }
    payment.feeMsat = feeMsat
    this.localMsat -= total
    this.unsettledLocalMsat += total
    const delivery = destination.receiveHtlc({
      paymentHash: request.paymentHash,
      amountMsat,
      paymentAddress: request.paymentSecret,
      expiryHeight: finalExpiry,
    })
    const resolve = (preimage: Buffer | undefined) => {
      this.unsettledLocalMsat -= total
      if (preimage) {
        this.remoteMsat += total
        payment.preimage = preimage
        finish('SUCCEEDED', 'FAILURE_REASON_NONE')
      } else {
        this.localMsat += total
        payment.feeMsat = 0n
        finish('FAILED', 'FAILURE_REASON_INCORRECT_PAYMENT_DETAILS')
      }
    }
    if (!delivery.accepted) queueMicrotask(() => resolve(undefined))
    else void delivery.settled.then(resolve)
    return payment
  }

  /** Stops this node's expiry timers. */
  stop() {
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
    this.events.removeAllListeners()
  }
}

/**
 * The in-memory Lightning network shared by the simulated nodes: every node has one channel to
 * the others (directly, or through a virtual routing node when a routing fee is set).
 *
 * @example
 * ```ts
 * const network = new LightningNetwork({ blockHeight: 200, routingFee: undefined })
 * const payer = network.addNode('payer', { localMsat: 1_000_000_000n, remoteMsat: 1_000_000_000n })
 * ```
 */
export class LightningNetwork {
  readonly nodes = new Map<string, SimulatedNode>()
  /** Public key of the virtual routing node used when `routingFee` is set. */
  readonly routerKey = Buffer.from(secp256k1.getPublicKey(secp256k1.utils.randomPrivateKey(), true)).toString(
    'hex',
  )
  readonly blockHash = randomBytes(32).toString('hex')
  readonly startedAt = nowSeconds()

  constructor(readonly settings: NetworkSettings) {}

  addNode(alias: string, balances: { localMsat: bigint; remoteMsat: bigint }): SimulatedNode {
    // Short channel id: block height (3 bytes) | transaction index (3 bytes) | output (2 bytes).
    const channelId = (
      (BigInt(this.settings.blockHeight - 6) << 40n) |
      (BigInt(this.nodes.size + 1) << 16n)
    ).toString()
    const node = new SimulatedNode(alias, channelId, this, balances)
    this.nodes.set(alias, node)
    return node
  }

  nodeByKey(publicKey: string): SimulatedNode | undefined {
    for (const node of this.nodes.values()) if (node.publicKey === publicKey) return node
    return undefined
  }

  stop() {
    for (const node of this.nodes.values()) node.stop()
  }
}

import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { loadSync } from '@grpc/proto-loader'
import { DevnetError } from '../errors.js'
import { checkMacaroon, type Permission } from './macaroons.js'
import {
  grpcCode,
  type InvoiceRecord,
  LightningRpcError,
  type PaymentRecord,
  type SimulatedNode,
} from './network.js'

// LND's own .proto files, as shipped by the `lightning` package (never hand-written copies).
const protosDirectory = () =>
  join(dirname(createRequire(import.meta.url).resolve('lightning/package.json')), 'grpc', 'protos')

// The same decoding options `lightning` uses on the client side (keepCase, longs and enums as
// strings), so request fields arrive exactly as named in LND's protos.
const loaderOptions = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true }

type ServiceDefinition = grpc.ServiceDefinition
let services:
  | { lightning: ServiceDefinition; invoices: ServiceDefinition; router: ServiceDefinition }
  | undefined
const loadServices = () => {
  if (services) return services
  const directory = protosDirectory()
  // One parse of the three files: invoices.proto and router.proto both import lightning.proto.
  const loaded = grpc.loadPackageDefinition(
    loadSync(
      ['lightning.proto', 'invoices.proto', 'router.proto'].map((file) => join(directory, file)),
      { ...loaderOptions, includeDirs: [directory] },
    ),
  ) as Record<string, Record<string, { service: ServiceDefinition }>>
  const service = (packageName: string, name: string) => {
    const definition = loaded[packageName]?.[name]?.service
    if (!definition)
      throw new DevnetError(`${packageName}.${name} missing from LND's protos`, {
        code: 'lightning_proto_missing',
      })
    return definition
  }
  services = {
    lightning: service('lnrpc', 'Lightning'),
    invoices: service('invoicesrpc', 'Invoices'),
    router: service('routerrpc', 'Router'),
  }
  return services
}

// LND's permission table (rpcserver.go MainRPCServerPermissions and the sub-servers' own) for the
// methods served here: a macaroon MUST grant exactly this entity/action.
const permissions: Record<string, Permission> = {
  GetInfo: { entity: 'info', action: 'read' },
  ChannelBalance: { entity: 'offchain', action: 'read' },
  AddInvoice: { entity: 'invoices', action: 'write' },
  LookupInvoice: { entity: 'invoices', action: 'read' },
  ListInvoices: { entity: 'invoices', action: 'read' },
  DecodePayReq: { entity: 'offchain', action: 'read' },
  SubscribeSingleInvoice: { entity: 'invoices', action: 'read' },
  AddHoldInvoice: { entity: 'invoices', action: 'write' },
  SettleInvoice: { entity: 'invoices', action: 'write' },
  CancelInvoice: { entity: 'invoices', action: 'write' },
  LookupInvoiceV2: { entity: 'invoices', action: 'read' },
  SendPaymentV2: { entity: 'offchain', action: 'write' },
  TrackPaymentV2: { entity: 'offchain', action: 'read' },
}

const featureNames: Record<number, string> = {
  0: 'data-loss-protect',
  7: 'gossip-queries',
  8: 'tlv-onion',
  12: 'static-remote-key',
  14: 'payment-addr',
  17: 'multi-path-payments',
  19: 'wumbo-channels',
  23: 'anchors-zero-fee-htlc-tx',
  25: 'route-blinding',
}
const featureMap = (bits: readonly number[]) =>
  Object.fromEntries(
    bits.map((bit) => [
      bit,
      { name: featureNames[bit] ?? 'unknown', is_required: bit % 2 === 0, is_known: bit in featureNames },
    ]),
  )
const nodeFeatures = [0, 7, 8, 12, 14, 17, 19, 23, 25]

const amount = (msat: bigint) => ({ sat: (msat / 1000n).toString(), msat: msat.toString() })
const toBigInt = (value: unknown) => {
  try {
    return BigInt(typeof value === 'string' || typeof value === 'number' ? value : 0)
  } catch {
    return 0n
  }
}
const bytes = (value: unknown) => (Buffer.isBuffer(value) ? value : Buffer.alloc(0))
/**
 * LND's `lnrpc.UnmarshallAmt` for a sat/msat field pair: setting both is an error (even when they
 * agree), and so is a negative amount.
 */
const unmarshallAmt = (sat: unknown, msat: unknown): bigint => {
  const sats = toBigInt(sat)
  const msats = toBigInt(msat)
  if (sats !== 0n && msats !== 0n)
    throw new LightningRpcError(grpcCode.unknown, 'sat and msat arguments are mutually exclusive')
  if (sats < 0n || msats < 0n) throw new LightningRpcError(grpcCode.unknown, 'amount cannot be negative')
  return sats !== 0n ? sats * 1000n : msats
}

/** `lnrpc.Invoice` for a stored invoice. */
const invoiceMessage = (invoice: InvoiceRecord) => ({
  memo: invoice.memo,
  r_preimage: invoice.preimage ?? Buffer.alloc(0),
  r_hash: invoice.paymentHash,
  value: (invoice.valueMsat / 1000n).toString(),
  value_msat: invoice.valueMsat.toString(),
  settled: invoice.state === 'SETTLED',
  creation_date: String(invoice.creationDate),
  settle_date: String(invoice.settleDate),
  payment_request: invoice.paymentRequest,
  description_hash: invoice.descriptionHash,
  expiry: String(invoice.expirySeconds),
  fallback_addr: invoice.fallbackAddress,
  cltv_expiry: String(invoice.cltvExpiry),
  route_hints: [],
  private: invoice.isPrivate,
  add_index: String(invoice.addIndex),
  settle_index: String(invoice.settleIndex),
  amt_paid: (invoice.amountPaidMsat / 1000n).toString(),
  amt_paid_sat: (invoice.amountPaidMsat / 1000n).toString(),
  amt_paid_msat: invoice.amountPaidMsat.toString(),
  state: invoice.state,
  htlcs: invoice.htlcs.map((htlc) => ({
    chan_id: htlc.channelId,
    htlc_index: String(htlc.htlcIndex),
    amt_msat: htlc.amountMsat.toString(),
    accept_height: htlc.acceptHeight,
    accept_time: String(htlc.acceptTime),
    resolve_time: String(htlc.resolveTime),
    expiry_height: htlc.expiryHeight,
    state: htlc.state,
    custom_records: {},
    mpp_total_amt_msat: htlc.totalMsat.toString(),
  })),
  features: featureMap(invoice.features),
  is_keysend: false,
  payment_addr: invoice.paymentAddress,
  is_amp: false,
})

/** `lnrpc.Payment` for a payment, with its single HTLC attempt once one was sent. */
const paymentMessage = (payment: PaymentRecord) => {
  const attempted =
    payment.status !== 'FAILED' || payment.failureReason === 'FAILURE_REASON_INCORRECT_PAYMENT_DETAILS'
  const total = payment.valueMsat + payment.feeMsat
  const lastHop = payment.route.hops.length - 1
  const route = {
    total_time_lock: payment.route.totalTimeLock,
    total_fees: (payment.feeMsat / 1000n).toString(),
    total_amt: (total / 1000n).toString(),
    total_fees_msat: payment.feeMsat.toString(),
    total_amt_msat: total.toString(),
    hops: payment.route.hops.map((hop, index) => ({
      chan_id: hop.channelId,
      chan_capacity: '0',
      amt_to_forward: (hop.amountToForwardMsat / 1000n).toString(),
      fee: (hop.feeMsat / 1000n).toString(),
      expiry: hop.expiry,
      amt_to_forward_msat: hop.amountToForwardMsat.toString(),
      fee_msat: hop.feeMsat.toString(),
      pub_key: hop.publicKey,
      tlv_payload: true,
      custom_records: {},
      // BOLT 4: the final hop carries the payment secret and the total amount.
      ...(index === lastHop && payment.route.paymentAddress
        ? {
            mpp_record: {
              payment_addr: payment.route.paymentAddress,
              total_amt_msat: payment.valueMsat.toString(),
            },
          }
        : {}),
    })),
  }
  const htlcStatus =
    payment.status === 'SUCCEEDED' ? 'SUCCEEDED' : payment.status === 'FAILED' ? 'FAILED' : 'IN_FLIGHT'
  return {
    payment_hash: payment.paymentHash.toString('hex'),
    value: (payment.valueMsat / 1000n).toString(),
    creation_date: (payment.creationTimeNs / 1_000_000_000n).toString(),
    fee: (payment.feeMsat / 1000n).toString(),
    payment_preimage: (payment.preimage ?? Buffer.alloc(32)).toString('hex'),
    value_sat: (payment.valueMsat / 1000n).toString(),
    value_msat: payment.valueMsat.toString(),
    payment_request: payment.paymentRequest,
    status: payment.status,
    fee_sat: (payment.feeMsat / 1000n).toString(),
    fee_msat: payment.feeMsat.toString(),
    creation_time_ns: payment.creationTimeNs.toString(),
    htlcs: attempted
      ? [
          {
            attempt_id: String(payment.paymentIndex),
            status: htlcStatus,
            route,
            attempt_time_ns: payment.attemptTimeNs.toString(),
            resolve_time_ns: payment.resolveTimeNs.toString(),
            preimage: payment.preimage ?? Buffer.alloc(0),
          },
        ]
      : [],
    payment_index: String(payment.paymentIndex),
    failure_reason: payment.failureReason,
  }
}

const isFinalInvoice = (invoice: InvoiceRecord) => invoice.state === 'SETTLED' || invoice.state === 'CANCELED'

type AnyCall =
  | grpc.ServerUnaryCall<Record<string, unknown>, unknown>
  | grpc.ServerWritableStream<Record<string, unknown>, unknown>
type Handler = (request: Record<string, unknown>, call: AnyCall) => unknown

const asServiceError = (error: unknown): Partial<grpc.StatusObject> => {
  if (error instanceof LightningRpcError) return { code: error.grpcCode, details: error.message }
  return { code: grpc.status.INTERNAL, details: 'internal simulator error' }
}

/**
 * Builds the gRPC implementation of one simulated node: `lnrpc.Lightning`, `invoicesrpc.Invoices`
 * and `routerrpc.Router` from LND's protos, every call gated by the node's macaroon root key.
 */
const implementations = (
  node: SimulatedNode,
  rootKey: Buffer,
  openStreams: Set<grpc.ServerWritableStream<Record<string, unknown>, unknown>>,
) => {
  const authorize = (method: string, call: AnyCall) => {
    const required = permissions[method]
    if (!required) return 'permission denied'
    // LND answers a macaroon failure as a plain error: gRPC status UNKNOWN with its text.
    return checkMacaroon({ rootKey, values: call.metadata.get('macaroon'), required })
  }
  const unary =
    (method: string, handler: Handler) =>
    (call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      const failure = authorize(method, call)
      if (failure) return callback({ code: grpc.status.UNKNOWN, details: failure })
      try {
        callback(null, handler(call.request, call))
      } catch (error) {
        callback(asServiceError(error))
      }
    }
  const stream =
    (
      method: string,
      handler: (
        request: Record<string, unknown>,
        call: grpc.ServerWritableStream<Record<string, unknown>, unknown>,
      ) => void,
    ) =>
    (call: grpc.ServerWritableStream<Record<string, unknown>, unknown>) => {
      const failure = authorize(method, call)
      // A server stream reports a status by emitting `error` with `code` and `details`.
      if (failure)
        return void call.emit(
          'error',
          Object.assign(new Error(failure), { code: grpc.status.UNKNOWN, details: failure }),
        )
      openStreams.add(call)
      const forget = () => openStreams.delete(call)
      call.on('finish', forget)
      call.on('cancelled', forget)
      try {
        handler(call.request, call)
      } catch (error) {
        const { code, details } = asServiceError(error)
        call.emit('error', Object.assign(new Error(details), { code, details }))
      }
    }

  const lightning = {
    GetInfo: unary('GetInfo', () => ({
      version: '0.19.2-beta commit=mppkit-devnet',
      commit_hash: '',
      identity_pubkey: node.publicKey,
      alias: node.alias,
      color: '#3399ff',
      num_pending_channels: 0,
      num_active_channels: 1,
      num_inactive_channels: 0,
      num_peers: 1,
      block_height: node.network.settings.blockHeight,
      block_hash: node.network.blockHash,
      best_header_timestamp: String(node.network.startedAt),
      synced_to_chain: true,
      synced_to_graph: true,
      testnet: false,
      chains: [{ chain: 'bitcoin', network: 'regtest' }],
      uris: [],
      features: featureMap(nodeFeatures),
      require_htlc_interceptor: false,
      store_final_htlc_resolutions: false,
      wallet_synced: true,
    })),
    ChannelBalance: unary('ChannelBalance', () => ({
      balance: (node.localMsat / 1000n).toString(),
      pending_open_balance: '0',
      local_balance: amount(node.localMsat),
      remote_balance: amount(node.remoteMsat),
      unsettled_local_balance: amount(node.unsettledLocalMsat),
      unsettled_remote_balance: amount(node.unsettledRemoteMsat),
      pending_open_local_balance: amount(0n),
      pending_open_remote_balance: amount(0n),
    })),
    AddInvoice: unary('AddInvoice', (request) => {
      const valueMsat = unmarshallAmt(request.value, request.value_msat)
      const preimage = bytes(request.r_preimage)
      const invoice = node.addInvoice({
        valueMsat,
        memo: String(request.memo ?? ''),
        preimage: preimage.length > 0 ? preimage : undefined,
        descriptionHash: bytes(request.description_hash),
        expirySeconds: Number(request.expiry ?? 0),
        cltvExpiry: Number(request.cltv_expiry ?? 0),
        fallbackAddress: String(request.fallback_addr ?? ''),
        isPrivate: request.private === true,
      })
      return {
        r_hash: invoice.paymentHash,
        payment_request: invoice.paymentRequest,
        add_index: String(invoice.addIndex),
        payment_addr: invoice.paymentAddress,
      }
    }),
    LookupInvoice: unary('LookupInvoice', (request) => {
      const hash =
        bytes(request.r_hash).length > 0
          ? bytes(request.r_hash)
          : Buffer.from(String(request.r_hash_str ?? ''), 'hex')
      return invoiceMessage(node.lookupInvoice(hash))
    }),
    ListInvoices: unary('ListInvoices', () => {
      const invoices = [...node.invoices.values()].map(invoiceMessage)
      return {
        invoices,
        last_index_offset: String(invoices.length),
        first_index_offset: invoices.length > 0 ? '1' : '0',
      }
    }),
    DecodePayReq: unary('DecodePayReq', (request) => {
      const decoded = node.decode(String(request.pay_req ?? ''))
      const msat = decoded.amountMsat ?? 0n
      return {
        destination: decoded.payee.toString('hex'),
        payment_hash: decoded.paymentHash.toString('hex'),
        num_satoshis: (msat / 1000n).toString(),
        timestamp: String(decoded.timestamp),
        expiry: String(decoded.expirySeconds),
        description: decoded.description ?? '',
        description_hash: decoded.descriptionHash?.toString('hex') ?? '',
        fallback_addr: '',
        cltv_expiry: String(decoded.minFinalCltvExpiry),
        route_hints: [],
        payment_addr: decoded.paymentSecret ?? Buffer.alloc(0),
        num_msat: msat.toString(),
        features: featureMap(decoded.features),
        blinded_paths: [],
      }
    }),
  }

  const invoices = {
    SubscribeSingleInvoice: stream('SubscribeSingleInvoice', (request, call) => {
      const hash = bytes(request.r_hash).toString('hex')
      const write = (invoice: InvoiceRecord) => {
        if (invoice.paymentHash.toString('hex') !== hash || call.cancelled) return
        call.write(invoiceMessage(invoice))
        // LND closes a single-invoice subscription once the invoice reached a final state.
        if (isFinalInvoice(invoice)) {
          node.events.off('invoice', write)
          call.end()
        }
      }
      // Apply a due expiry before listening, so the current state is delivered exactly once.
      const current = node.invoices.get(hash)
      if (current) node.lookupInvoice(current.paymentHash)
      call.on('cancelled', () => node.events.off('invoice', write))
      node.events.on('invoice', write)
      // LND first delivers the invoice's current state, then each change.
      if (current) write(current)
    }),
    AddHoldInvoice: unary('AddHoldInvoice', (request) => {
      const hash = bytes(request.hash)
      if (hash.length !== 32) throw new LightningRpcError(grpcCode.unknown, 'invalid hash: must be 32 bytes')
      const valueMsat = unmarshallAmt(request.value, request.value_msat)
      const invoice = node.addInvoice({
        valueMsat,
        memo: String(request.memo ?? ''),
        hash,
        descriptionHash: bytes(request.description_hash),
        expirySeconds: Number(request.expiry ?? 0),
        cltvExpiry: Number(request.cltv_expiry ?? 0),
        fallbackAddress: String(request.fallback_addr ?? ''),
        isPrivate: request.private === true,
      })
      return {
        payment_request: invoice.paymentRequest,
        add_index: String(invoice.addIndex),
        payment_addr: invoice.paymentAddress,
      }
    }),
    SettleInvoice: unary('SettleInvoice', (request) => {
      node.settleInvoice(bytes(request.preimage))
      return {}
    }),
    CancelInvoice: unary('CancelInvoice', (request) => {
      node.cancelInvoice(bytes(request.payment_hash))
      return {}
    }),
    LookupInvoiceV2: unary('LookupInvoiceV2', (request) =>
      invoiceMessage(node.lookupInvoice(bytes(request.payment_hash))),
    ),
  }

  const streamPayment = (
    payment: PaymentRecord,
    call: grpc.ServerWritableStream<Record<string, unknown>, unknown>,
    quiet: boolean,
  ) => {
    const key = `payment:${payment.paymentHash.toString('hex')}`
    const write = (update: PaymentRecord) => {
      if (call.cancelled) return node.events.off(key, write)
      if (update.status === 'IN_FLIGHT' && quiet) return
      call.write(paymentMessage(update))
      if (update.status !== 'IN_FLIGHT') {
        node.events.off(key, write)
        call.end()
      }
    }
    call.on('cancelled', () => node.events.off(key, write))
    node.events.on(key, write)
    write(payment)
  }

  const router = {
    SendPaymentV2: stream('SendPaymentV2', (request, call) => {
      if (!request.payment_request) {
        // Spontaneous (keysend) and hash-only payments are outside this simulator.
        throw new LightningRpcError(
          grpcCode.unknown,
          'payment_request is required by the mppkit devnet simulator',
        )
      }
      // LND (extractIntentFromSendRequest) reads the fee limit, then the amount, each as a sat/msat pair.
      const feeLimitMsat = unmarshallAmt(request.fee_limit_sat, request.fee_limit_msat)
      const amountMsat = unmarshallAmt(request.amt, request.amt_msat)
      const payment = node.sendPayment({
        paymentRequest: String(request.payment_request),
        amountMsat,
        feeLimitMsat,
      })
      streamPayment(payment, call, request.no_inflight_updates === true)
    }),
    TrackPaymentV2: stream('TrackPaymentV2', (request, call) => {
      const payment = node.payments.get(bytes(request.payment_hash).toString('hex'))
      if (!payment) throw new LightningRpcError(grpcCode.notFound, "payment isn't initiated")
      streamPayment(payment, call, request.no_inflight_updates === true)
    }),
  }

  return { lightning, invoices, router }
}

/**
 * Starts one node's LND-compatible gRPC server on `127.0.0.1` with an OS-assigned port, TLS from
 * `certificate`/`privateKey`, and macaroons checked against `rootKey`.
 *
 * @example
 * ```ts
 * const { port, stop } = await startNodeServer({ node, rootKey, certificate, privateKey })
 * ```
 */
export async function startNodeServer(parameters: {
  node: SimulatedNode
  rootKey: Buffer
  certificate: string
  privateKey: string
}): Promise<{ port: number; stop: () => Promise<void> }> {
  const definitions = loadServices()
  const server = new grpc.Server()
  const openStreams = new Set<grpc.ServerWritableStream<Record<string, unknown>, unknown>>()
  const { lightning, invoices, router } = implementations(parameters.node, parameters.rootKey, openStreams)
  server.addService(definitions.lightning, lightning as unknown as grpc.UntypedServiceImplementation)
  server.addService(definitions.invoices, invoices as unknown as grpc.UntypedServiceImplementation)
  server.addService(definitions.router, router as unknown as grpc.UntypedServiceImplementation)
  const credentials = grpc.ServerCredentials.createSsl(
    null,
    [{ private_key: Buffer.from(parameters.privateKey), cert_chain: Buffer.from(parameters.certificate) }],
    false,
  )
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (error, boundPort) =>
      error
        ? reject(
            new DevnetError('Lightning simulator could not bind a port', {
              code: 'devnet_start_failed',
              cause: error,
            }),
          )
        : resolve(boundPort),
    ),
  )
  const stop = async () => {
    // End open subscriptions with status OK (as LND does on shutdown of a subscription), then let
    // in-flight responses and trailers reach their clients before closing; a client that still
    // holds a connection after a second is cut off.
    for (const call of openStreams) if (!call.writableEnded) call.end()
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown()
        resolve()
      }, 1_000)
      server.tryShutdown(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }
  return { port, stop }
}

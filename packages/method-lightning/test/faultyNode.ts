import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { loadSync } from '@grpc/proto-loader'
import { createSelfSignedCertificate, type LightningNodeInfo } from '../../devnet/src/lightning/index.js'

/** A gRPC status a faulty node answers with instead of the node's own answer. */
export type Fault = { code: grpc.status; details: string }

// LND's own .proto files, as shipped by the `lightning` package (the simulator loads the same).
const protos = join(
  dirname(createRequire(import.meta.url).resolve('lightning/package.json')),
  'grpc',
  'protos',
)
const same = (bytes: Buffer) => bytes

/**
 * The gRPC methods of LND's Lightning, Invoices and Router services that take one request, each with
 * its path and whether it streams its answer (client- and bidi-streaming methods are not proxied).
 */
function methods(): Array<{ name: string; path: string; responseStream: boolean }> {
  const loaded = grpc.loadPackageDefinition(
    loadSync(
      ['lightning.proto', 'invoices.proto', 'router.proto'].map((file) => join(protos, file)),
      { keepCase: true, includeDirs: [protos] },
    ),
  ) as Record<string, Record<string, { service: grpc.ServiceDefinition }>>
  const services = [loaded.lnrpc?.Lightning, loaded.invoicesrpc?.Invoices, loaded.routerrpc?.Router]
  return services.flatMap((service) =>
    Object.entries(service?.service ?? {})
      .filter(([, method]) => !method.requestStream)
      .map(([name, method]) => ({ name, path: method.path, responseStream: method.responseStream })),
  )
}

/**
 * A gRPC proxy in front of a simulated LND node (its own TLS certificate; the client's macaroon passed
 * on), forwarding every call's bytes unchanged until a test makes a method fail: `fail('LookupInvoice',
 * { code: grpc.status.INTERNAL, details }, paymentHash)` answers that method's calls about that invoice
 * with that status, as a
 * node whose database or RPC layer fails does; `heal()` forwards them again. The `lightning` client
 * sees real gRPC statuses over a real connection, exactly as from LND.
 *
 * @example
 * ```ts
 * const node = await faultyNode(network.info.nodes.payee)
 * const lnd = authenticatedLndGrpc(node.info).lnd
 * node.fail('LookupInvoice', { code: grpc.status.INTERNAL, details: 'database is locked' }, paymentHash)
 * ```
 */
export async function faultyNode(target: LightningNodeInfo) {
  const upstream = new grpc.Client(
    target.socket,
    grpc.credentials.createSsl(Buffer.from(target.cert, 'base64')),
  )
  const faults = new Map<string, { fault: Fault; about: Buffer | undefined }>()
  /** The fault for this call of `name`, when one is set for it (and its request names `about`). */
  const faultFor = (name: string, request: Buffer) => {
    counts.set(name, (counts.get(name) ?? 0) + 1)
    const set = faults.get(name)
    return set && (!set.about || request.includes(set.about)) ? set.fault : undefined
  }
  const counts = new Map<string, number>()
  const server = new grpc.Server()
  const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {}
  const implementation: grpc.UntypedServiceImplementation = {}
  for (const { name, path, responseStream } of methods()) {
    definition[name] = {
      path,
      requestStream: false,
      responseStream,
      requestSerialize: same,
      requestDeserialize: same,
      responseSerialize: same,
      responseDeserialize: same,
    }
    // Only the macaroon goes on: the rest of the incoming metadata is the proxy's own connection's.
    const metadata = (incoming: grpc.Metadata) => {
      const outgoing = new grpc.Metadata()
      for (const value of incoming.get('macaroon')) outgoing.add('macaroon', value)
      return outgoing
    }
    implementation[name] = responseStream
      ? (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
          const fault = faultFor(name, call.request)
          if (fault) return call.emit('error', Object.assign(new Error(fault.details), fault))
          const answer = upstream.makeServerStreamRequest(
            path,
            same,
            same,
            call.request,
            metadata(call.metadata),
          )
          answer.on('data', (chunk: Buffer) => call.write(chunk))
          answer.on('end', () => call.end())
          answer.on('error', (error) => call.emit('error', error))
          call.on('cancelled', () => answer.cancel())
        }
      : (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          const fault = faultFor(name, call.request)
          if (fault) return callback(fault)
          upstream.makeUnaryRequest(path, same, same, call.request, metadata(call.metadata), callback)
        }
  }
  server.addService(definition, implementation)
  const { certificate, privateKey } = createSelfSignedCertificate({ commonName: `${target.alias}-proxy` })
  const credentials = grpc.ServerCredentials.createSsl(
    null,
    [{ private_key: Buffer.from(privateKey), cert_chain: Buffer.from(certificate) }],
    false,
  )
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (error, bound) => (error ? reject(error) : resolve(bound))),
  )
  return {
    /** The proxy as `authenticatedLndGrpc` takes it: its socket and certificate, the node's macaroon. */
    info: { ...target, socket: `127.0.0.1:${port}`, cert: Buffer.from(certificate).toString('base64') },
    /**
     * Answers `method`'s calls with `fault` from now on (until {@link heal}); with `about` (hex, e.g. a
     * payment hash), only the calls whose request carries those bytes.
     */
    fail(method: string, fault: Fault, about?: string) {
      faults.set(method, { fault, about: about === undefined ? undefined : Buffer.from(about, 'hex') })
    },
    /** Forwards every call again. */
    heal() {
      faults.clear()
    },
    /** How many calls of `method` reached the proxy. */
    calls: (method: string) => counts.get(method) ?? 0,
    close: async () => {
      server.forceShutdown()
      upstream.close()
    },
  }
}

import type { AddressInfo } from 'node:net'
import { createServer, type Server, type Socket } from 'node:net'
import { type AuthenticatedLnd, authenticatedLndGrpc, getWalletInfo } from 'lightning'
import type { LightningNodeInfo } from '../../devnet/src/lightning/index.js'

// One `lnd` object per node and socket in a test file: each `authenticatedLndGrpc` parses LND's .proto
// files again (about half a second of CPU), and tests ask for the payer's balance many times. gRPC
// multiplexes the calls of the tests and the servers on its one connection. A test that changes an `lnd`
// object changes a copy of it (see `holdLookup` in session.test.ts), never the shared one.
const clients = new Map<string, AuthenticatedLnd>()
const clientKey = (info: Pick<LightningNodeInfo, 'cert' | 'macaroon'>, socket: string) =>
  `${socket} ${info.macaroon} ${info.cert}`

/**
 * A TCP proxy in front of a node's gRPC socket that the outage tests turn off: `down` drops every open
 * connection and refuses new ones, as a crashed or unreachable LND does; `stall` keeps every connection
 * open and accepts new ones but passes nothing on either way from then on, as a hung LND or a connection
 * that died without a reset does (nothing fails: calls just get no answer).
 */
export async function nodeProxy(target: string) {
  const [host, port] = [
    target.slice(0, target.lastIndexOf(':')),
    Number(target.slice(target.lastIndexOf(':') + 1)),
  ]
  let down = false
  let stalled = false
  const sockets = new Set<Socket>()
  const { connect } = await import('node:net')
  const server: Server = createServer((client) => {
    if (down) {
      client.destroy()
      return
    }
    if (stalled) {
      sockets.add(client)
      client.on('error', () => client.destroy())
      return
    }
    const upstream = connect(port, host)
    // As gRPC's own sockets: without it, Nagle's algorithm holds each small write until the previous one
    // is acknowledged, and delayed ACKs make every call through the proxy take ~40-100 ms more.
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    sockets.add(client).add(upstream)
    const drop = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', drop).on('close', drop)
    upstream.on('error', drop).on('close', drop)
    // Forwarded while not stalled (what a stall swallows is gone: the connection never recovers).
    const forward = (from: Socket, to: Socket) =>
      from.on('data', (chunk) => stalled || to.write(chunk)).on('end', () => stalled || to.end())
    forward(client, upstream)
    forward(upstream, client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const proxySocket = `127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    socket: proxySocket,
    down() {
      down = true
      for (const socket of sockets) socket.destroy()
      sockets.clear()
    },
    up() {
      down = false
    },
    stall() {
      stalled = true
    },
    close: () =>
      new Promise<void>((resolve) => {
        // A later proxy may get this port: its clients must not be this one's.
        for (const key of clients.keys()) if (key.startsWith(`${proxySocket} `)) clients.delete(key)
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

/** An `lnd` object for `info` (optionally through a proxy socket), shared by the file's tests. */
export function lndFor(
  info: Pick<LightningNodeInfo, 'socket' | 'cert' | 'macaroon'>,
  socket: string = info.socket,
): AuthenticatedLnd {
  const key = clientKey(info, socket)
  let lnd = clients.get(key)
  if (!lnd) {
    lnd = authenticatedLndGrpc({ cert: info.cert, macaroon: info.macaroon, socket }).lnd
    clients.set(key, lnd)
  }
  return lnd
}

/** Waits until `lnd` answers again (gRPC reconnects with a backoff after an outage). */
export async function waitUntilReachable(lnd: AuthenticatedLnd, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      await getWalletInfo({ lnd })
      return
    } catch (error) {
      if (Date.now() > deadline) throw error
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}

import type { AddressInfo } from 'node:net'
import { createServer, type Server, type Socket } from 'node:net'
import { type AuthenticatedLnd, authenticatedLndGrpc, getWalletInfo } from 'lightning'
import type { LightningNodeInfo } from '../../devnet/src/lightning/index.js'

/**
 * A TCP proxy in front of a node's gRPC socket that the outage tests turn off: `down` drops every open
 * connection and refuses new ones, as a crashed or unreachable LND does.
 */
export async function nodeProxy(target: string) {
  const [host, port] = [
    target.slice(0, target.lastIndexOf(':')),
    Number(target.slice(target.lastIndexOf(':') + 1)),
  ]
  let down = false
  const sockets = new Set<Socket>()
  const { connect } = await import('node:net')
  const server: Server = createServer((client) => {
    if (down) {
      client.destroy()
      return
    }
    const upstream = connect(port, host)
    sockets.add(client).add(upstream)
    const drop = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', drop).on('close', drop)
    upstream.on('error', drop).on('close', drop)
    client.pipe(upstream).pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    socket: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    down() {
      down = true
      for (const socket of sockets) socket.destroy()
      sockets.clear()
    },
    up() {
      down = false
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
}

/** An `lnd` object for `info` (optionally through a proxy socket). */
export function lndFor(
  info: Pick<LightningNodeInfo, 'socket' | 'cert' | 'macaroon'>,
  socket: string = info.socket,
): AuthenticatedLnd {
  return authenticatedLndGrpc({ cert: info.cert, macaroon: info.macaroon, socket }).lnd
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

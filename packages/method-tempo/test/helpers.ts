import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Address, Hex } from 'viem'
import { streamChannelEscrowAbi, type TempoDevnetInfo, tempoClients } from '../../devnet/src/tempo/index.js'

/**
 * A JSON-RPC proxy in front of a node, to simulate outages: `up` forwards, `down` refuses (connection
 * reset), `lose-send` forwards transaction submissions but loses the answer (the node got it),
 * `send-then-down` forwards the next transaction submission, loses its answer and refuses everything
 * after it (the RPC went away between broadcast and confirmation) until the mode changes,
 * `hold-send` keeps transaction submissions until `release()` (`held()` resolves once one waits).
 */
export async function rpcProxy(target: string) {
  let mode: 'up' | 'down' | 'lose-send' | 'send-then-down' | 'hold-send' = 'up'
  let requests = 0
  let release: (() => void) | undefined
  let released = Promise.resolve()
  let onHeld: (() => void) | undefined
  let heldNow = false
  const server: Server = createServer(async (req, res) => {
    requests++
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks).toString()
    if (mode === 'down') {
      req.socket.destroy()
      return
    }
    if (mode === 'hold-send' && /eth_sendRawTransaction/.test(body)) {
      heldNow = true
      onHeld?.()
      await released
    }
    const response = await fetch(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    })
    const text = await response.text()
    const sent = /eth_sendRawTransaction/.test(body)
    if ((mode === 'lose-send' || mode === 'send-then-down') && sent) {
      if (mode === 'send-then-down') mode = 'down'
      req.socket.destroy()
      return
    }
    res.writeHead(response.status, { 'content-type': 'application/json' })
    res.end(text)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    /** JSON-RPC requests received so far (refused ones included). */
    requests: () => requests,
    set(next: typeof mode) {
      if (next === 'hold-send') {
        heldNow = false
        released = new Promise<void>((resolve) => {
          release = resolve
        })
      }
      mode = next
    },
    /** Resolves once a transaction submission is held (`hold-send`). */
    held: () =>
      heldNow
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            onHeld = resolve
          }),
    /** Lets the held submissions through (and later ones: the mode goes back to `up`). */
    release() {
      mode = 'up'
      release?.()
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** A v1 escrow channel as the devnet's escrow stores it. */
export type OnChainChannel = {
  payer: Address
  payee: Address
  token: Address
  authorizedSigner: Address
  deposit: bigint
  settled: bigint
  closeRequestedAt: bigint
  finalized: boolean
}

/** Reads a channel from the devnet's escrow contract. */
export function readChannel(info: TempoDevnetInfo, channelId: Hex): Promise<OnChainChannel> {
  return tempoClients(info).publicClient.readContract({
    address: info.escrow,
    abi: streamChannelEscrowAbi,
    functionName: 'getChannel',
    args: [channelId],
  }) as Promise<OnChainChannel>
}

import type { Server } from 'node:http'
import { type WebSocket, WebSocketServer } from 'ws'
import { stringify } from './json.js'
import { type Commitment, type Ledger, type RecordedTransaction, reaches } from './Ledger.js'

/**
 * The PubSub websocket of the Solana node: `signatureSubscribe` and `slotSubscribe` (what
 * `@solana/kit`'s `sendAndConfirmTransactionFactory` listens to) with their unsubscribe methods,
 * on the same port as the HTTP RPC.
 *
 * @example
 * ```ts
 * const pubsub = attachSubscriptions(server, ledger)
 * await pubsub.close()
 * ```
 */
export function attachSubscriptions(server: Server, ledger: Ledger): { close(): Promise<void> } {
  const wss = new WebSocketServer({ server })
  let nextId = 0
  type Subscription =
    | { kind: 'signature'; socket: WebSocket; signature: string; commitment: Commitment }
    | { kind: 'slot'; socket: WebSocket }
  const subscriptions = new Map<number, Subscription>()

  const send = (socket: WebSocket, message: unknown) => {
    if (socket.readyState === socket.OPEN) socket.send(stringify(message))
  }
  const notifySignature = (id: number, socket: WebSocket, record: RecordedTransaction) => {
    // A signature subscription is one-shot: the server drops it after the notification.
    subscriptions.delete(id)
    send(socket, {
      jsonrpc: '2.0',
      method: 'signatureNotification',
      params: { result: { context: { slot: record.slot }, value: { err: record.err } }, subscription: id },
    })
  }

  // A signature subscription fires once its transaction reaches the subscription's commitment.
  const check = () => {
    for (const [id, subscription] of subscriptions) {
      if (subscription.kind !== 'signature') continue
      const record = ledger.history.get(subscription.signature)
      if (record && reaches(ledger.commitmentOf(record), subscription.commitment))
        notifySignature(id, subscription.socket, record)
    }
  }
  const onTransaction = (_record: RecordedTransaction) => check()
  const onSlot = (slot: bigint) => {
    check()
    for (const [id, subscription] of subscriptions)
      if (subscription.kind === 'slot')
        send(subscription.socket, {
          jsonrpc: '2.0',
          method: 'slotNotification',
          params: { result: { parent: slot - 1n, root: slot, slot }, subscription: id },
        })
  }
  ledger.on('transaction', onTransaction)
  ledger.on('slot', onSlot)

  wss.on('connection', (socket) => {
    socket.on('message', (raw) => {
      let request: { id?: unknown; method?: unknown; params?: unknown }
      try {
        request = JSON.parse(raw.toString())
      } catch {
        send(socket, { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } })
        return
      }
      const id = request.id ?? null
      const params = Array.isArray(request.params) ? request.params : []
      const reply = (result: unknown) => send(socket, { jsonrpc: '2.0', id, result })
      switch (request.method) {
        case 'signatureSubscribe': {
          const signature = params[0]
          if (typeof signature !== 'string') {
            send(socket, { jsonrpc: '2.0', id, error: { code: -32602, message: 'Invalid params' } })
            return
          }
          const subscriptionId = nextId++
          const options = params[1] as { commitment?: unknown } | undefined
          const commitment = (
            ['processed', 'confirmed', 'finalized'].includes(options?.commitment as string)
              ? options?.commitment
              : 'finalized'
          ) as Commitment
          subscriptions.set(subscriptionId, { kind: 'signature', socket, signature, commitment })
          reply(subscriptionId)
          // Agave answers at once for a signature already in its status cache at that commitment.
          const record = ledger.history.get(signature)
          if (record && reaches(ledger.commitmentOf(record), commitment))
            notifySignature(subscriptionId, socket, record)
          return
        }
        case 'slotSubscribe': {
          const subscriptionId = nextId++
          subscriptions.set(subscriptionId, { kind: 'slot', socket })
          reply(subscriptionId)
          return
        }
        case 'signatureUnsubscribe':
        case 'slotUnsubscribe': {
          const subscriptionId = Number(params[0])
          const existed = subscriptions.get(subscriptionId)?.socket === socket
          if (existed) subscriptions.delete(subscriptionId)
          if (!existed && request.method === 'slotUnsubscribe')
            send(socket, { jsonrpc: '2.0', id, error: { code: -32602, message: 'Invalid subscription id.' } })
          else reply(true)
          return
        }
        default:
          // kit's auto-ping sends `ping` without an id; a notification gets no answer.
          if (request.id === undefined) return
          send(socket, { jsonrpc: '2.0', id, error: { code: -32601, message: 'Method not found' } })
      }
    })
    socket.on('close', () => {
      for (const [id, subscription] of subscriptions)
        if (subscription.socket === socket) subscriptions.delete(id)
    })
  })

  return {
    close: () =>
      new Promise<void>((resolve) => {
        ledger.off('transaction', onTransaction)
        ledger.off('slot', onSlot)
        for (const client of wss.clients) client.terminate()
        wss.close(() => resolve())
      }),
  }
}

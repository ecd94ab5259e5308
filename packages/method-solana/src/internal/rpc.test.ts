import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { createRpc, RpcAnswerError, RpcUnavailableError } from './rpc.js'

// The node:http transport of the server's RPC caller against a real HTTP server: answers, JSON-RPC
// errors and every kind of outage are told apart.
let close: (() => Promise<void>) | undefined
afterEach(async () => {
  await close?.()
  close = undefined
})

async function node(handler: (request: IncomingMessage, response: ServerResponse) => void) {
  const server = createServer(handler)
  server.keepAliveTimeout = 50
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

const json = (response: ServerResponse, status: number, body: string) => {
  response.writeHead(status, { 'content-type': 'application/json' })
  response.end(body)
}

describe('createRpc over node:http', () => {
  it('returns results and keeps working after the node closes an idle kept-alive socket', async () => {
    let calls = 0
    const url = await node((request, response) => {
      calls++
      request.resume().on('end', () => json(response, 200, `{"jsonrpc":"2.0","id":1,"result":${calls}}`))
    })
    const rpc = createRpc(url, 1000)
    expect(await rpc('getSlot', [])).toBe(1)
    await new Promise((resolve) => setTimeout(resolve, 120)) // past the server's keep-alive timeout
    expect(await rpc('getSlot', [])).toBe(2)
  })

  it('a JSON-RPC error is an answer; -32603 is an outage', async () => {
    let code = -32002
    const url = await node((request, response) => {
      request
        .resume()
        .on('end', () =>
          json(
            response,
            200,
            `{"jsonrpc":"2.0","id":1,"error":{"code":${code},"message":"no","data":{"err":1}}}`,
          ),
        )
    })
    const rpc = createRpc(url, 1000)
    await expect(rpc('sendTransaction', [])).rejects.toMatchObject({ code: -32002, data: { err: 1 } })
    await expect(rpc('sendTransaction', [])).rejects.toBeInstanceOf(RpcAnswerError)
    code = -32603
    await expect(rpc('sendTransaction', [])).rejects.toBeInstanceOf(RpcUnavailableError)
  })

  it.each([
    ['HTTP 503', (response: ServerResponse) => json(response, 503, 'busy')],
    ['HTTP 429', (response: ServerResponse) => json(response, 429, '{}')],
    ['an unreadable answer', (response: ServerResponse) => json(response, 200, '<html>')],
    ['a reset connection', (response: ServerResponse) => response.socket?.destroy()],
    ['no answer within the timeout', () => {}],
  ])('%s is an outage', async (_name, answer) => {
    const url = await node((request, response) => request.resume().on('end', () => answer(response)))
    await expect(createRpc(url, 200)('getSlot', [])).rejects.toBeInstanceOf(RpcUnavailableError)
  })

  it('a refused connection is an outage', async () => {
    const url = await node(() => {})
    await close?.()
    close = undefined
    await expect(createRpc(url, 500)('getSlot', [])).rejects.toThrow(/getSlot: ECONNREFUSED/)
  })
})

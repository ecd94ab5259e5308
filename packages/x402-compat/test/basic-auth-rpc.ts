// A JSON-RPC endpoint behind Basic auth for the tests: a local proxy in front of another RPC (the devnet's
// LiteSVM node) that answers 401 to a request without the right `Authorization: Basic` (or with
// credentials left in its URL), and records every call it was sent.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

/** One call the proxy was sent: its JSON-RPC method, whether it was authorized, and the status it got. */
export type RpcCall = { method: string; authorized: boolean; status: number }

/**
 * Starts the proxy to `target` for `user` and `password` (sent percent-decoded, as UTF-8).
 *
 * @example
 * ```ts
 * const rpc = await basicAuthRpc(node.info.rpcUrl, 'user', 'pw') // http://user:pw@127.0.0.1:<rpc.port>
 * ```
 */
export async function basicAuthRpc(target: string, user: string, password: string) {
  const expected = `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`
  const seen: RpcCall[] = []
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks).toString('utf8')
    const authorized = req.headers.authorization === expected && !req.url?.includes('@')
    const call: RpcCall = {
      method: (JSON.parse(body || '{}') as { method?: string }).method ?? '?',
      authorized,
      status: 401,
    }
    seen.push(call)
    if (!authorized) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="rpc"' }).end()
      return
    }
    const answer = await fetch(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    })
    call.status = answer.status
    res.writeHead(answer.status, { 'content-type': 'application/json' }).end(await answer.text())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

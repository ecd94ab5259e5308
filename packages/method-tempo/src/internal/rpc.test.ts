import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ServiceUnavailableError } from '@mppkit/core'
import { getBlockNumber } from 'viem/actions'
import { describe, expect, it } from 'vitest'
import { isUnavailable, neverSent, publicClientFor, unavailable } from './rpc.js'

describe('unavailable', () => {
  it('leads its message with the cause and the RPC origin (never its path), keeping the problem generic', async () => {
    const probe = createServer()
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    const { port } = probe.address() as AddressInfo
    await new Promise((resolve) => probe.close(resolve))
    const rpcUrl = `http://127.0.0.1:${port}/v1/secret-api-key`
    const failure = await getBlockNumber(publicClientFor({}, rpcUrl, 4217)).catch((e: unknown) => e)
    expect(isUnavailable(failure)).toBe(true)
    const error = unavailable(failure)
    expect(error).toBeInstanceOf(ServiceUnavailableError)
    expect(error.message).toBe(
      `Tempo RPC unreachable at http://127.0.0.1:${port}: ECONNREFUSED 127.0.0.1:${port}`,
    )
    expect(error.message).not.toContain('secret-api-key')
    expect(error.toProblem()).toMatchObject({
      status: 503,
      detail: 'The Tempo RPC node is unavailable; retry the same credential later.',
    })
  })
})

describe('neverSent', () => {
  it('is true for a refused connection only, not for one dropped after the request went out', async () => {
    const closed = createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const { port } = closed.address() as AddressInfo
    await new Promise((resolve) => closed.close(resolve))
    const refused = await getBlockNumber(publicClientFor({}, `http://127.0.0.1:${port}`, 4217)).catch(
      (e: unknown) => e,
    )
    expect(isUnavailable(refused)).toBe(true)
    expect(neverSent(refused)).toBe(true)

    // A node that reads the request, then drops the connection: it may have acted on it.
    const dropping = createServer((req) => {
      req.resume()
      req.on('end', () => req.socket.destroy())
    })
    await new Promise<void>((resolve) => dropping.listen(0, '127.0.0.1', resolve))
    try {
      const url = `http://127.0.0.1:${(dropping.address() as AddressInfo).port}`
      const dropped = await getBlockNumber(publicClientFor({}, url, 4217)).catch((e: unknown) => e)
      expect(isUnavailable(dropped)).toBe(true)
      expect(neverSent(dropped)).toBe(false)
      // A timeout: the request was sent, no answer came.
      const silent = createServer(() => {})
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
      try {
        const slowUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`
        const timedOut = await getBlockNumber(publicClientFor({ timeout: 200 }, slowUrl, 4217)).catch(
          (e: unknown) => e,
        )
        expect(isUnavailable(timedOut)).toBe(true)
        expect(neverSent(timedOut)).toBe(false)
      } finally {
        silent.closeAllConnections()
        await new Promise((resolve) => silent.close(resolve))
      }
    } finally {
      dropping.closeAllConnections()
      await new Promise((resolve) => dropping.close(resolve))
    }
  })
})

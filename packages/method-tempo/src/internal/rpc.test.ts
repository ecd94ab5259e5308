import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ServiceUnavailableError } from '@mppkit/core'
import { getBlockNumber } from 'viem/actions'
import { describe, expect, it } from 'vitest'
import { isUnavailable, publicClientFor, unavailable } from './rpc.js'

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

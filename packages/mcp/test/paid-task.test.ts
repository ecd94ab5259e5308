// A paid call run as an MCP task (`params.task`) or tied to one (the related-task `_meta` key) is answered
// by the SDK's task machinery, which may refuse it or queue its answer for the task: settled first, such a
// payment would be lost (MCP has no Idempotency-Key). Refused before any challenge, never settled.
// (Found in review 2026-12-06: a tool, prompt or resource called with `task` was settled, then refused.)
import { describe, expect, it } from 'vitest'
import { raw } from './fixture.js'

const credentialKey = 'org.paymentauth/credential'
const relatedTask = 'io.modelcontextprotocol/related-task'

describe('paid MCP calls as tasks', () => {
  for (const [label, method, params] of [
    ['tool', 'tools/call', { name: 'premium' }],
    ['prompt', 'prompts/get', { name: 'expert' }],
    ['resource', 'resources/read', { uri: 'data://premium/market' }],
  ] as const) {
    it(`a paid ${label} call with params.task or a related task is refused (-32602), neither challenged nor settled`, async () => {
      const t = await raw()
      // A credential made for the plain call: presented with `task`, still refused, nothing settled.
      const plain = await t.request({ method, params })
      expect(plain.error?.code).toBe(-32042)
      const payment = await t.payer.pay(plain.error.data.challenges, { url: `mcp://weather/${method}` })
      for (const extra of [
        { task: { ttl: 60_000 } },
        { _meta: { [relatedTask]: { taskId: 't1' } } },
        { task: { ttl: 60_000 }, _meta: { [credentialKey]: payment.credential } },
        { _meta: { [relatedTask]: { taskId: 't1' }, [credentialKey]: payment.credential } },
      ]) {
        const answer = await t.request({ method, params: { ...params, ...extra } })
        expect(answer.error?.code, JSON.stringify(extra)).toBe(-32602)
        expect(answer.error.message).toMatch(/cannot run as an MCP task/)
        expect(answer.result).toBeUndefined()
      }
      expect(t.rail.settlements()).toBe(0)
      expect(t.calls.length).toBe(0)
      // The same credential still pays the plain call, once.
      const paid = await t.request({
        method,
        params: { ...params, _meta: { [credentialKey]: payment.credential } },
      })
      expect(paid.error).toBeUndefined()
      expect(t.rail.settlements()).toBe(1)
    })
  }
})

import { describe, expect, it } from 'vitest'
import { textResponse } from '../src/internal/LazyResponse.js'

describe('textResponse', () => {
  const make = () =>
    textResponse('{"type":"x"}', { status: 402, headers: [['content-type', 'application/problem+json']] })
  it('reads through every body accessor', async () => {
    expect(await make().text()).toBe('{"type":"x"}')
    expect(await make().json()).toEqual({ type: 'x' })
    expect(new TextDecoder().decode(await make().arrayBuffer())).toBe('{"type":"x"}')
    expect(await (await make().blob()).text()).toBe('{"type":"x"}')
    expect(await new Response(make().body).text()).toBe('{"type":"x"}')
  })
  it('keeps status and headers, tracks bodyUsed, clones, and survives re-wrapping', async () => {
    const response = make()
    expect(response.status).toBe(402)
    expect(response.headers.get('content-type')).toBe('application/problem+json')
    expect(response.bodyUsed).toBe(false)
    const clone = response.clone()
    await response.text()
    expect(response.bodyUsed).toBe(true)
    expect(await clone.text()).toBe('{"type":"x"}')
    const again = make()
    expect(await new Response(again.body, again).text()).toBe('{"type":"x"}')
  })
})

import { describe, expect, test } from 'vitest'
import { compile, normalizedUri } from './Paywall.js'

const offers = [{ method: 'test', request: { amount: '1000', currency: 'usd' } }]

describe('compile', () => {
  test('a paid resource is gated under every spelling the SDK resolves to it', () => {
    const paywall = compile({
      resources: { 'data://premium/market': offers, 'https://api.example.com/report': offers },
    })
    const targets = [
      'data://premium/market',
      'DATA://premium/market',
      'Data://premium/market',
      'data://premium/./market',
      'data://premium/x/../market',
      ' data://premium/market',
      'https://API.example.com/report',
      'https://api.example.com:443/report',
      'HTTPS://api.example.com/./report',
    ].map((uri) => paywall.gateOf('resources/read', { uri })?.target)
    expect(new Set(targets)).toEqual(new Set(['data://premium/market', 'https://api.example.com/report']))
    expect(paywall.gateOf('resources/read', { uri: 'data://premium/other' })).toBeUndefined()
    // Tool and prompt names are matched as the SDK matches them: exactly.
    expect(
      compile({ tools: { Forecast: offers } }).gateOf('tools/call', { name: 'forecast' }),
    ).toBeUndefined()
  })

  test('a priced URI template gates every URI it matches, each challenge bound to the URI read', () => {
    const paywall = compile({ resources: { 'data://items/{id}': offers } })
    const gate = paywall.gateOf('resources/read', { uri: 'DATA://items/x/../42' })
    expect(gate?.target).toBe('data://items/42')
    expect(gate?.route.offers[0]?.opaque).toEqual({ mcp: 'resources/read data://items/42' })
    expect(paywall.gateOf('resources/read', { uri: 'data://items/7' })?.route.offers[0]?.opaque).toEqual({
      mcp: 'resources/read data://items/7',
    })
    expect(paywall.gateOf('resources/read', { uri: 'data://items/7/more' })).toBeUndefined()
  })

  test('two spellings of one resource priced twice are refused', () => {
    expect(() =>
      compile({ resources: { 'data://a/b': offers, 'DATA://a/./b': offers } }),
    ).toThrowErrorMatchingInlineSnapshot(
      `[ConfigurationError: resources/read DATA://a/./b is priced twice (as data://a/b)]`,
    )
  })

  test('normalizedUri serializes as new URL does, or keeps a string that is not a URL', () => {
    expect(normalizedUri('HTTPS://Example.com:443/a/../b')).toBe('https://example.com/b')
    expect(normalizedUri('market')).toBe('market')
  })
})

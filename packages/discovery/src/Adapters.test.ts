import { once } from 'node:events'
import { createServer } from 'node:http'
import { type AddressInfo, connect } from 'node:net'
import express from 'express'
import { describe, expect, test } from 'vitest'
import { node } from './Adapters.js'
import { create } from './Discovery.js'

const discovery = create({
  info: { title: 'Weather API', version: '1.0.0' },
  operations: [{ path: '/weather', route: { offers: [{ method: 'test', request: { amount: '1000' } }] } }],
})

/** Sends one raw GET with this Host header (HTTP/1.0: an unchunked body); resolves with the status line and body. */
function rawGet(port: number, path: string, host: string): Promise<{ status: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () =>
      socket.write(`GET ${path} HTTP/1.0\r\nHost: ${host}\r\n\r\n`),
    )
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk) => {
      text += chunk
    })
    socket.on('end', () => {
      const [head = '', body = ''] = text.split('\r\n\r\n')
      resolve({ status: head.split('\r\n')[0] ?? '', body })
    })
    socket.on('error', reject)
  })
}

const badHosts = ['a:b', '[', 'a:99999', '[::1', 'localhost']

describe('node adapter: Host headers that are no URL authority', () => {
  test('a bare node:http listener stays up, serves discovery paths and hands on the rest', async () => {
    const middleware = node(discovery)
    const errors: unknown[] = []
    const server = createServer((req, res) => {
      try {
        middleware(req, res, () => res.end('app'))
      } catch (error) {
        // Without the fix this is where the throw lands (uncaught in a real listener: the process exits).
        errors.push(error)
        res.statusCode = 500
        res.end('thrown')
      }
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo
    try {
      for (const host of badHosts) {
        const manifest = await rawGet(port, '/.well-known/mpp.json', host)
        expect(manifest.status, host).toBe('HTTP/1.1 200 OK')
        expect(JSON.parse(manifest.body)).toEqual(discovery.manifest())
        const other = await rawGet(port, '/weather', host)
        expect(other.status, host).toBe('HTTP/1.1 200 OK')
        expect(other.body).toBe('app')
      }
      expect(errors).toEqual([])
    } finally {
      server.close()
    }
  })

  test('Express: discovery paths are served and other GETs reach the app, never a 500', async () => {
    const app = express()
    app.use(node(discovery))
    app.get('/weather', (_req, res) => {
      res.send('app')
    })
    const server = app.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo
    try {
      for (const host of badHosts) {
        expect((await rawGet(port, '/openapi.json', host)).status, host).toBe('HTTP/1.1 200 OK')
        const other = await rawGet(port, '/weather', host)
        expect(other.status, host).toBe('HTTP/1.1 200 OK')
        expect(other.body).toBe('app')
      }
    } finally {
      server.close()
    }
  })
})

describe('adapters: the service keeps its own responses and stays up', () => {
  test("Hono: the app's own Link header is kept beside the discovery one", async () => {
    const { Hono } = await import('hono')
    const { hono } = await import('./Adapters.js')
    const app = new Hono()
    app.use(hono(discovery) as never)
    app.get('/set', (c) => {
      c.header('link', '</style.css>; rel=preload')
      return c.text('a')
    })
    app.get('/own', () => new Response('b', { headers: { link: '</s.css>; rel=preload' } }))
    for (const path of ['/set', '/own']) {
      const link = (await app.request(path)).headers.get('link') ?? ''
      expect(link, path).toMatch(/rel=preload/)
      expect(link, path).toContain('</openapi.json>; rel="mpp-endpoint"')
    }
  })

  test('node:http: a document that cannot be generated goes to next(error), the listener stays up', async () => {
    const route = { offers: [{ method: 'test', request: { amount: '1000' } as Record<string, unknown> }] }
    const changing = create({ info: { title: 'API', version: '1' }, operations: [{ path: '/a', route }] })
    // The route changed after startup to a price discovery cannot publish.
    route.offers[0]!.request.amount = '1.5'
    const middleware = node(changing)
    const thrown: unknown[] = []
    const server = createServer((req, res) => {
      try {
        middleware(req, res, (error) => {
          res.statusCode = error ? 500 : 200
          res.end(error ? 'next(error)' : 'app')
        })
      } catch (error) {
        thrown.push(error)
        res.statusCode = 500
        res.end('thrown')
      }
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const { port } = server.address() as AddressInfo
    try {
      const response = await fetch(`http://127.0.0.1:${port}/openapi.json`)
      expect(await response.text()).toBe('next(error)')
      expect(thrown).toEqual([])
    } finally {
      server.close()
    }
  })
})

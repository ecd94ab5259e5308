import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import * as net from 'node:net'
import * as tls from 'node:tls'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
// The devnet's LND certificate (localhost, 127.0.0.1, ::1): a real self-signed certificate to trust.
import { createSelfSignedCertificate } from '../../../devnet/src/lightning/certificate.js'
import { Http1Error, http1Post } from './http1.js'

// The keep-alive HTTP/1.1 client of the RPC caller against real servers: node:http (Content-Length,
// chunked, keep-alive timeouts), node:https, and raw sockets that answer with exact bytes (framing cases
// node:http never produces, split at every possible place).
const closers: (() => Promise<void>)[] = []
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!()
})

const modules = { net, tls }
const options = { maxAnswerBytes: 1024 }

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const sockets = new Set<Socket>()
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  )
  return (server.address() as AddressInfo).port
}

/** A node:http server; counts the connections it accepted. */
async function httpServer(
  handler: (request: IncomingMessage, response: ServerResponse, body: string) => void,
  keepAliveTimeout = 5000,
) {
  const server = createServer({ keepAliveTimeout }, (request, response) => {
    let body = ''
    request.setEncoding('utf8')
    request.on('data', (part: string) => (body += part))
    request.on('end', () => handler(request, response, body))
  })
  const stats = { connections: 0 }
  server.on('connection', () => stats.connections++)
  const port = await listen(server)
  return { server, stats, url: new URL(`http://127.0.0.1:${port}/rpc?key=k`) }
}

/** A raw TCP server that answers each request (once its bytes arrive) with `answer` in `parts`. */
async function rawServer(
  answer: (index: number) => string | Buffer,
  split: (bytes: Buffer) => Buffer[] = (b) => [b],
) {
  let index = 0
  const requests: string[] = []
  const stats = { connections: 0 }
  const server = net.createServer((socket) => {
    stats.connections++
    let pending = ''
    socket.on('data', async (chunk) => {
      pending += chunk.toString('latin1')
      const end = pending.indexOf('\r\n\r\n')
      if (end < 0) return
      const length = Number(/content-length: (\d+)/i.exec(pending)![1])
      if (pending.length < end + 4 + length) return
      requests.push(pending.slice(0, end + 4 + length))
      pending = ''
      const reply = answer(index++)
      for (const part of split(Buffer.isBuffer(reply) ? reply : Buffer.from(reply, 'latin1'))) {
        socket.write(part)
        await new Promise((resolve) => setImmediate(resolve))
      }
    })
  })
  const port = await listen(server)
  return { requests, stats, url: new URL(`http://127.0.0.1:${port}/`) }
}

describe('http1Post', () => {
  it('posts the JSON body with Host, Content-Length and basic auth, and reuses one connection', async () => {
    const seen: { url: string | undefined; headers: IncomingMessage['headers']; body: string }[] = []
    const { stats, url } = await httpServer((request, response, body) => {
      seen.push({ url: request.url, headers: request.headers, body })
      response.writeHead(200, { 'content-type': 'application/json' })
      response.end(`{"echo":${body}}`)
    })
    url.username = 'us%40er'
    url.password = 'p:ss'
    const post = http1Post(url, modules, options)
    for (let i = 0; i < 5; i++) {
      const body = JSON.stringify({ n: i, text: 'ü€' })
      expect(await post(body, 1000)).toEqual({ status: 200, text: `{"echo":${body}}` })
    }
    expect(stats.connections).toBe(1)
    expect(seen[0]!.url).toBe('/rpc?key=k')
    expect(seen[0]!.headers.host).toBe(url.host)
    expect(seen[0]!.headers['content-type']).toBe('application/json')
    expect(seen[0]!.headers.authorization).toBe(`Basic ${Buffer.from('us@er:p:ss').toString('base64')}`)
    expect(seen[4]!.body).toBe('{"n":4,"text":"ü€"}')
  })

  it('opens one connection per call in flight and keeps them for reuse', async () => {
    const { stats, url } = await httpServer((_request, response, body) => {
      setTimeout(() => response.end(body), 5)
    })
    const post = http1Post(url, modules, options)
    const answers = await Promise.all(Array.from({ length: 4 }, (_, i) => post(`${i}`, 1000)))
    expect(answers.map((a) => a.text)).toEqual(['0', '1', '2', '3'])
    expect(stats.connections).toBe(4)
    await Promise.all(Array.from({ length: 4 }, (_, i) => post(`${i}`, 1000)))
    expect(stats.connections).toBe(4)
  })

  it('keeps at most maxIdle connections for reuse', async () => {
    const { stats, url } = await httpServer((_request, response, body) => {
      setTimeout(() => response.end(body), 5)
    })
    const post = http1Post(url, modules, { ...options, maxIdle: 3 })
    const burst = () => Promise.all(Array.from({ length: 5 }, (_, i) => post(`${i}`, 1000)))
    expect((await burst()).map((a) => a.text)).toEqual(['0', '1', '2', '3', '4'])
    expect(stats.connections).toBe(5)
    // Three of the five were kept: the next burst reuses them and opens two.
    await burst()
    expect(stats.connections).toBe(7)
  })

  it('reads a chunked answer (node:http without Content-Length)', async () => {
    const { url } = await httpServer((_request, response) => {
      response.write('{"a":')
      setTimeout(() => response.end('"b"}'), 5)
    })
    const post = http1Post(url, modules, options)
    expect(await post('{}', 1000)).toEqual({ status: 200, text: '{"a":"b"}' })
    expect(await post('{}', 1000)).toEqual({ status: 200, text: '{"a":"b"}' })
  })

  it("honours the node's Keep-Alive timeout hint", async () => {
    // node:http announces `Keep-Alive: timeout=0` for a 30 ms keep-alive: too short to reuse.
    const { stats, url } = await httpServer((_request, response) => response.end('ok'), 30)
    const post = http1Post(url, modules, options)
    expect((await post('1', 1000)).text).toBe('ok')
    expect((await post('2', 1000)).text).toBe('ok')
    expect(stats.connections).toBe(2)
  })

  it('opens a new connection when the node closed the idle one', async () => {
    let connections = 0
    const server = net.createServer((socket) => {
      connections++
      socket.on('data', () => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
        setTimeout(() => socket.end(), 10)
      })
    })
    const port = await listen(server)
    const post = http1Post(new URL(`http://127.0.0.1:${port}`), modules, options)
    expect((await post('1', 1000)).text).toBe('ok')
    await new Promise((resolve) => setTimeout(resolve, 60))
    expect((await post('2', 1000)).text).toBe('ok')
    expect(connections).toBe(2)
  })

  it('sends again when a reused connection closes before any answer byte', async () => {
    let connections = 0
    const server = net.createServer((socket) => {
      const connection = ++connections
      let requests = 0
      socket.on('data', () => {
        // The first connection answers its first request, then goes away on the next without answering.
        if (connection === 1 && ++requests === 2) socket.destroy()
        else socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n${connection}`)
      })
    })
    const port = await listen(server)
    const post = http1Post(new URL(`http://127.0.0.1:${port}`), modules, options)
    expect((await post('1', 1000)).text).toBe('1')
    expect((await post('2', 1000)).text).toBe('2')
    expect(connections).toBe(2)
  })

  it('a reused connection that took the request and closed, then a refused resend, fails as a reset', async () => {
    // The node reads the second request and goes away (stops listening): the resend is refused, but the
    // first attempt was written and may have been acted on, so the failure must not read as "refused".
    let requests = 0
    const server = net.createServer((socket) => {
      socket.on('data', () => {
        if (++requests === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
        else {
          server.close()
          socket.destroy()
        }
      })
    })
    const port = await listen(server)
    const post = http1Post(new URL(`http://127.0.0.1:${port}`), modules, options)
    expect((await post('1', 1000)).text).toBe('ok')
    await expect(post('2', 1000)).rejects.toMatchObject({ name: 'Http1Error', code: 'ECONNRESET' })
    expect(requests).toBe(2)
    // A first call refused at connect is told apart: nothing was written.
    await expect(post('3', 1000)).rejects.toMatchObject({ code: 'ECONNREFUSED' })
  })

  it.each([
    ['a close before the answer', () => '', 'ECONNRESET'],
    ['a partial head then close', () => 'HTTP/1.1 200 OK\r\nContent-Len', 'ECONNRESET'],
    ['a short body then close', () => 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc', 'ECONNRESET'],
    ['not HTTP', () => 'SSH-2.0-OpenSSH\r\n\r\n', 'BAD_ANSWER'],
    ['a malformed field', () => 'HTTP/1.1 200 OK\r\nno colon\r\n\r\n', 'BAD_ANSWER'],
    ['a bad Content-Length', () => 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n', 'BAD_ANSWER'],
    [
      'two different Content-Lengths',
      () => 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
      'BAD_ANSWER',
    ],
    ['a bad chunk size', () => 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 'BAD_ANSWER'],
    [
      'a compressed body',
      () => 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
      'BAD_ANSWER',
    ],
    [
      'an answer larger than the bound',
      () => `HTTP/1.1 200 OK\r\nContent-Length: 1025\r\n\r\n`,
      'ANSWER_TOO_LARGE',
    ],
    [
      'a chunked answer larger than the bound',
      () =>
        `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n${'x'.repeat(1024)}\r\n1\r\nx\r\n0\r\n\r\n`,
      'ANSWER_TOO_LARGE',
    ],
    ['a protocol switch', () => 'HTTP/1.1 101 Switching Protocols\r\n\r\n', 'BAD_ANSWER'],
  ])('%s fails the call (%s)', async (_name, answer, code) => {
    const server = net.createServer((socket) =>
      socket.once('data', () => {
        const text = answer()
        if (text === '') socket.destroy()
        else socket.end(text)
      }),
    )
    const port = await listen(server)
    const post = http1Post(new URL(`http://127.0.0.1:${port}`), modules, options)
    await expect(post('{}', 1000)).rejects.toMatchObject({ name: 'Http1Error', code })
  })

  it('times out a node that never answers, and the next call works on a new connection', async () => {
    let calls = 0
    const { url } = await httpServer((_request, response) => {
      if (calls++ > 0) response.end('late')
    })
    const post = http1Post(url, modules, options)
    await expect(post('{}', 50)).rejects.toMatchObject({ code: 'TIMEOUT' })
    expect((await post('{}', 1000)).text).toBe('late')
  })

  it('a refused connection fails with ECONNREFUSED', async () => {
    const server = net.createServer()
    const port = await listen(server)
    await closers.pop()!()
    const post = http1Post(new URL(`http://127.0.0.1:${port}`), modules, options)
    await expect(post('{}', 1000)).rejects.toMatchObject({ code: 'ECONNREFUSED' })
  })

  it('skips interim answers, honours Connection: close and reads a close-delimited body', async () => {
    const { requests, url } = await rawServer((index) =>
      index === 0
        ? 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi'
        : 'never sent: the first connection is closed',
    )
    const post = http1Post(url, modules, options)
    expect(await post('{}', 1000)).toEqual({ status: 200, text: 'hi' })
    const server = net.createServer((socket) =>
      socket.once('data', () => socket.end('HTTP/1.0 503 Busy\r\n\r\nbusy')),
    )
    const port = await listen(server)
    const closeDelimited = http1Post(new URL(`http://127.0.0.1:${port}`), modules, options)
    expect(await closeDelimited('{}', 1000)).toEqual({ status: 503, text: 'busy' })
    expect(await closeDelimited('{}', 1000)).toEqual({ status: 503, text: 'busy' })
    expect(requests).toHaveLength(1)
  })

  it('reads every framing the same however the bytes are split', async () => {
    const body = '{"jsonrpc":"2.0","id":1,"result":{"ok":"ü"}}'
    const bytes = Buffer.from(body, 'utf8')
    const chunked = (sizes: number[]) => {
      let at = 0
      let out = ''
      for (const size of sizes) {
        const part = bytes.subarray(at, Math.min(bytes.length, at + size))
        if (part.length === 0) break
        out += `${part.length.toString(16)};ext=1\r\n${part.toString('latin1')}\r\n`
        at += part.length
      }
      if (at < bytes.length)
        out += `${(bytes.length - at).toString(16)}\r\n${bytes.subarray(at).toString('latin1')}\r\n`
      return `${out}0\r\nX-Trailer: 1\r\n\r\n`
    }
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('length', 'chunked'),
        fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 12 }),
        async (framing, chunkSizes, cuts) => {
          const answer =
            framing === 'length'
              ? `HTTP/1.1 200 OK\r\ncontent-length: ${bytes.length}\r\n\r\n${bytes.toString('latin1')}`
              : `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(chunkSizes)}`
          const split = (all: Buffer) => {
            const parts: Buffer[] = []
            let at = 0
            for (const cut of cuts) {
              if (at >= all.length) break
              parts.push(all.subarray(at, at + cut))
              at += cut
            }
            if (at < all.length) parts.push(all.subarray(at))
            return parts
          }
          const { requests, stats, url } = await rawServer(() => answer, split)
          const post = http1Post(url, modules, options)
          // Twice on the same connection: each answer ends exactly where it should.
          expect(await post('{}', 1000)).toEqual({ status: 200, text: body })
          expect(await post('{}', 1000)).toEqual({ status: 200, text: body })
          expect(requests).toHaveLength(2)
          expect(stats.connections).toBe(1)
          await closers.pop()!()
        },
      ),
      { numRuns: 40 },
    )
  })

  it('drops a connection that sent bytes past its answer', async () => {
    const { requests, stats, url } = await rawServer(
      () => 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naEXTRA',
    )
    const post = http1Post(url, modules, options)
    expect((await post('{}', 1000)).text).toBe('a')
    expect((await post('{}', 1000)).text).toBe('a')
    expect(requests).toHaveLength(2)
    expect(stats.connections).toBe(2)
  })

  it('speaks TLS to an https node, checking its certificate', async () => {
    const { certificate, privateKey } = createSelfSignedCertificate()
    const server = createHttpsServer({ cert: certificate, key: privateKey }, (_request, response) =>
      response.end('secure'),
    )
    const port = await listen(server)
    const trusted = http1Post(new URL(`https://localhost:${port}/`), modules, {
      ...options,
      tls: { ca: certificate },
    })
    expect(await trusted('{}', 2000)).toEqual({ status: 200, text: 'secure' })
    expect(await trusted('{}', 2000)).toEqual({ status: 200, text: 'secure' })
    const untrusted = http1Post(new URL(`https://localhost:${port}/`), modules, options)
    await expect(untrusted('{}', 2000)).rejects.toBeInstanceOf(Http1Error)
  })
})

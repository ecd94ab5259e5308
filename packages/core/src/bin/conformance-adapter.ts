#!/usr/bin/env node
import { type AdapterRequest, handleRequest } from '../internal/conformanceAdapter.js'

// One JSON request on stdin, one JSON response on stdout (conformance HARNESS_SPEC.md, schema 1).
let data = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => {
  data += chunk
})
process.stdin.on('end', async () => {
  let request: AdapterRequest
  try {
    request = JSON.parse(data) as AdapterRequest
  } catch {
    process.stdout.write(
      `${JSON.stringify({ ok: false, error: { type: 'unknown_error', message: 'request is not JSON' } })}\n`,
    )
    return
  }
  process.stdout.write(`${JSON.stringify(await handleRequest(request))}\n`)
})

// The README's quickstart, run as written: every shell command and code block of its "Quickstart"
// section, so the README cannot drift from what works. `npm start` (the playground) is run by
// apps/playground/test/start.test.ts; here `npm run demo` runs and the commands pasted from its output
// run against the local Tempo node it starts.
import { execFile, spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../../', import.meta.url))
const built = ['core', 'devnet', 'method-tempo', 'method-stripe'].every((p) =>
  existsSync(`${root}packages/${p}/dist/index.js`),
)
if (!built) console.warn('[skip] README quickstart: run `npm run build` first (npm test does)')

/** The code blocks of the README's "Quickstart" section, in order. */
function quickstartBlocks(): { lang: string; body: string }[] {
  const readme = readFileSync(`${root}README.md`, 'utf8')
  const start = readme.indexOf('\n## Quickstart\n')
  const end = readme.indexOf('\n## ', start + 1)
  const section = readme.slice(start, end === -1 ? undefined : end)
  return [...section.matchAll(/^```(\w+)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1]!, body: m[2]! }))
}

describe.skipIf(!built)('README quickstart (every command and code block)', () => {
  const blocks = quickstartBlocks()
  const commands = blocks.filter((b) => b.lang === 'sh').flatMap((b) => b.body.trim().split('\n'))
  let demo: ReturnType<typeof spawn> | undefined
  let printed = ''
  let paid: Promise<number>
  let firstPayment: number | undefined

  beforeAll(() => {
    // `npm run demo`, exactly as the README says (in its own process group, to stop it with everything it
    // started). It reuses the devnet of the test run when there is one (MPPKIT_DEVNET_INFO).
    const began = performance.now()
    demo = spawn('npm', ['run', 'demo'], { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'inherit'] })
    paid = new Promise((resolve, reject) => {
      const lines = createInterface({ input: demo!.stdout! })
      lines.on('line', (line) => {
        printed += `${line}\n`
        // The bar: a fresh `npm run demo` reaches its first payment in under 60 s (the later demos,
        // one per rail, follow it).
        if (firstPayment === undefined && /^200 \{ city: 'Lisbon'/.test(line))
          firstPayment = performance.now() - began
        if (line.startsWith('Ctrl-C stops')) resolve(performance.now() - began)
      })
      demo!.on('exit', (code) =>
        reject(new Error(`npm run demo exited (${code}) before it was ready:\n${printed}`)),
      )
    })
    paid.catch(() => {})
  })
  afterAll(async () => {
    if (demo?.pid && demo.exitCode === null) {
      const exited = new Promise((resolve) => demo!.once('exit', resolve))
      process.kill(-demo.pid, 'SIGINT')
      await exited
    }
  })

  it('has the commands a newcomer types: npm install, npm start, npm run demo, then the pasted ones', () => {
    expect(commands.slice(0, 3)).toEqual(['npm install', 'npm start', 'npm run demo'])
    // `npm start` opens the playground (built, then served: apps/playground/test/start.test.ts runs it);
    // `npm run demo` is the terminal demo, unchanged.
    const scripts = JSON.parse(readFileSync(`${root}package.json`, 'utf8')).scripts as Record<string, string>
    expect(scripts.start).toMatch(
      /apps\/playground\/build\.mjs.*&& exec node apps\/playground\/dist\/server\.mjs$/,
    )
    expect(scripts.demo).toMatch(/&& node examples\/quickstart\/start\.mjs$/)
    // No npx of a package that is not published (npx would fetch whatever has that name).
    expect(commands.filter((c) => /\bnpx\b/.test(c))).toEqual([])
  })

  it('shows the quickstart server and client exactly as `npm run demo` runs them', () => {
    const js = blocks.filter((b) => b.lang === 'js').map((b) => b.body.trim())
    expect(js).toEqual(
      ['server.mjs', 'client.mjs'].map((f) => readFileSync(`${root}examples/quickstart/${f}`, 'utf8').trim()),
    )
  })

  it('`npm install` has linked the mppkit command the pasted commands use', () => {
    // `npm install` ran before this suite (it is how the suite got its dependencies): check its effect.
    expect(existsSync(`${root}node_modules/.bin/mppkit`)).toBe(true)
  })

  it('`npm run demo` pays within 60 s and prints the README commands with the real URL and a devnet key', async () => {
    const elapsed = await paid
    console.log(
      `[readme] npm run demo: first payment after ${Math.round(firstPayment ?? -1)} ms, ready after ${Math.round(elapsed)} ms`,
    )
    expect(firstPayment).toBeLessThan(60_000)
    expect(printed).toMatch(/^200 \{ city: 'Lisbon'/m)
    expect(printed).toMatch(/reference: '0x[0-9a-f]{64}'/)
    expect(printed).toContain("200 { answer: 42 } { spent: '300', acceptedCumulative: '300' }")
    expect(printed).toMatch(/^closed 200/m)
    // The Stripe example on the devnet Stripe simulator: a paid card, then a decline.
    expect(printed).toMatch(/^200 \{"report":"Q3 revenue up 12%","paymentIntent":"pi_\w+"\}$/m)
    expect(printed).toMatch(/^402 insufficient_funds - Your card has insufficient funds\.$/m)
    expect(printed).not.toMatch(/spt_\w{4}/)
    // The paid MCP tool (examples/mcp-paid-tool): paid over MCP, receipt in the result's _meta.
    expect(printed).toMatch(/^forecast Paris: sunny, 21 °C \(paid in 0x[0-9a-f]{64}\)$/m)
    expect(printed).toMatch(
      /^ {2}export MPPKIT_URL=http:\/\/127\.0\.0\.1:\d+\/weather MPPKIT_RPC_URL=http:\/\/127\.0\.0\.1:\d+ MPPKIT_PRIVATE_KEY=0x[0-9a-f]{64}$/m,
    )
    const suggested = printed
      .slice(printed.indexOf('then try:'))
      .split('\n')
      .filter((line) => line.startsWith('  '))
      .map((line) => line.trim())
    expect(suggested).toEqual(commands.slice(3))
  }, 240_000)

  it('every pasted command works against the running server', async () => {
    await paid
    const exported = /^ {2}(export MPPKIT_URL=.*)$/m.exec(printed)![1]!
    const outputs: Record<string, { stdout: string; stderr: string }> = {}
    for (const command of commands.slice(3)) {
      // As a user would: the export line pasted first, then the command, in a shell in the clone.
      outputs[command] = await run('bash', ['-c', `${exported}\n${command}`], { cwd: root, timeout: 60_000 })
    }
    const [inspect, pay, client] = commands.slice(3).map((c) => outputs[c]!)
    expect(inspect!.stdout).toContain('402 Payment Required')
    expect(inspect!.stdout).toContain('tempo/charge  realm=localhost')
    expect(JSON.parse(pay!.stdout)).toEqual({ city: 'Lisbon', forecast: 'sunny', celsius: 24 })
    expect(pay!.stderr).toMatch(
      /mppkit pay: pay 0\.01 AlphaUSD \(10000 base units\) to 0x[0-9a-fA-F]{40} \(realm localhost/,
    )
    expect(client!.stdout).toMatch(/^200 \{ city: 'Lisbon'/m)
  }, 120_000)
})

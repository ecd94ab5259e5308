// `fileChannelStore`: the JSON file a session client keeps its channels in across restarts (see
// session-resume.test.ts for the client on anvil). One running client per file, whole-file atomic writes,
// owner-only permissions, and clear errors for a file that is not a channel file.

import { spawn } from 'node:child_process'
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ConfigurationError } from '@mppkit/core/client'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as Channel from '../src/Channel.js'
import { sessionClient } from '../src/client/index.js'
import { fileChannelStore, type SavedChannel } from '../src/client/node.js'

const account = privateKeyToAccount(`0x${'11'.repeat(32)}`)
const payee = privateKeyToAccount(`0x${'22'.repeat(32)}`).address
const escrow = '0x3333333333333333333333333333333333333333' as const
const token = '0x20c0000000000000000000000000000000000000' as const
const salt = `0x${'44'.repeat(32)}` as const

const record = (overrides: Partial<SavedChannel> = {}): SavedChannel => ({
  v: 1,
  payer: account.address,
  channelId: Channel.computeId({
    payer: account.address,
    payee,
    token,
    salt,
    authorizedSigner: '0x0000000000000000000000000000000000000000',
    escrow,
    chainId: 31337,
  }),
  escrow,
  currency: token,
  recipient: payee,
  salt,
  chainId: 31337,
  deposit: '100000',
  cumulative: '3000',
  spent: '2000',
  url: 'https://api.example/r',
  open: { transaction: '0x76f8', nonce: 0 },
  ...overrides,
})
const key =
  `${account.address}|${account.address}|31337|api.example|${escrow}|${payee}|${token}`.toLowerCase()

describe('fileChannelStore', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mppkit-channel-store-'))
  })
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  it('saves, loads and deletes records in one owner-only file written whole (no temporary file left)', async () => {
    const path = join(dir, 'roundtrip.json')
    const store = fileChannelStore(path)
    expect(await store.load()).toEqual({})
    expect(existsSync(path)).toBe(false)
    await store.save('a', record())
    await store.save('b', record({ cumulative: '5000' }))
    expect((statSync(path).mode & 0o777).toString(8)).toBe('600')
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({
      v: 1,
      channels: { a: record(), b: record({ cumulative: '5000' }) },
    })
    await store.delete('a')
    await store.delete('missing')
    expect(Object.keys(await store.load())).toEqual(['b'])
    expect(readdirSync(dir).filter((name) => name.startsWith('roundtrip') && name.endsWith('.tmp'))).toEqual(
      [],
    )
    store.close()
    // Read back by a new store (a restart).
    const again = fileChannelStore(path)
    expect(await again.load()).toEqual({ b: record({ cumulative: '5000' }) })
    again.close()
  })

  it('keeps a second client off the file: another store of this process, or a live process holding the lock', async () => {
    const path = join(dir, 'locked.json')
    const first = fileChannelStore(path)
    await first.save('a', record())
    const second = fileChannelStore(path)
    await expect(second.load()).rejects.toThrow(ConfigurationError)
    await expect(second.load()).rejects.toThrow(/in use by another channel store of this process/)
    first.close()
    expect(existsSync(`${path}.lock`)).toBe(false)
    expect(Object.keys(await second.load())).toEqual(['a'])
    second.close()

    // A lock naming a running process (a child that waits) refuses; once that process has ended, its
    // lock is taken over.
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' })
    try {
      writeFileSync(`${path}.lock`, String(child.pid))
      const third = fileChannelStore(path)
      await expect(third.load()).rejects.toThrow(new RegExp(`in use by process ${child.pid}`))
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill()
      await exited
      expect(Object.keys(await third.load())).toEqual(['a'])
      expect(readFileSync(`${path}.lock`, 'utf8')).toBe(String(process.pid))
      third.close()
    } finally {
      child.kill()
    }
  })

  it('a lock naming no process is held while fresh and taken over once old; a store never removes a lock it does not hold', async () => {
    const path = join(dir, 'odd-lock.json')
    writeFileSync(`${path}.lock`, '')
    const store = fileChannelStore(path)
    await expect(store.load()).rejects.toThrow(/in use by another process/)
    const old = new Date(Date.now() - 120_000)
    utimesSync(`${path}.lock`, old, old)
    expect(await store.load()).toEqual({})
    expect(readFileSync(`${path}.lock`, 'utf8')).toBe(String(process.pid))
    // Another process's lock written over ours (as if ours had been taken over as stale): close() leaves it.
    writeFileSync(`${path}.lock`, '1')
    store.close()
    expect(readFileSync(`${path}.lock`, 'utf8')).toBe('1')
    rmSync(`${path}.lock`)
    expect(readdirSync(dir).filter((name) => name.startsWith('odd-lock.json.lock.'))).toEqual([])
  })

  it('refuses a file that is not a channel file, naming it and never its contents', async () => {
    const notJson = join(dir, 'not-json.json')
    writeFileSync(notJson, '{"v":1,"channels":{"a":{"secret-looking":')
    const store = fileChannelStore(notJson)
    const error = await store.load().catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(ConfigurationError)
    expect((error as Error).message).toMatch(/is not JSON; fix or remove it/)
    expect((error as Error).message).not.toMatch(/secret-looking/)
    store.close()

    const wrong = join(dir, 'wrong.json')
    writeFileSync(wrong, JSON.stringify({ v: 2, channels: [] }))
    const other = fileChannelStore(wrong)
    await expect(other.load()).rejects.toThrow(/is not a channel file/)
    other.close()
    expect(() => fileChannelStore('')).toThrow(ConfigurationError)
  })
})

describe('sessionClient({ channelStore })', () => {
  const options = { account, rpcUrl: 'http://127.0.0.1:9' }

  it('checks the option when the client is created', () => {
    for (const channelStore of [null, {}, { load() {}, save() {} }, 'file.json'])
      expect(() => sessionClient({ ...options, channelStore: channelStore as never })).toThrow(
        /channelStore must be an object with load, save and delete functions/,
      )
  })

  it('skips and names an invalid record of this payer by its key (before any chain read); other payers and signers are left alone', async () => {
    const records: Record<string, unknown> = {
      // Another payer's record (another key prefix) is left alone, whatever it holds.
      [`0x${'ab'.repeat(20)}|elsewhere`]: { v: 9 },
    }
    const store = {
      load: async () => records as Record<string, SavedChannel>,
      save: async () => {},
      delete: async () => {},
    }
    // Nothing of this payer: nothing restored and no chain read (the RPC URL answers nothing).
    expect(await sessionClient({ ...options, channelStore: store }).restore()).toEqual([])
    // A record of this payer under another voucher signer's key is not this client's to pay on.
    const signer = privateKeyToAccount(`0x${'55'.repeat(32)}`)
    records[key] = record()
    expect(await sessionClient({ ...options, signer, channelStore: store }).restore()).toEqual([])

    for (const [bad, pattern] of [
      [{ ...record(), cumulative: '-1' }, /not a valid record \(cumulative\)/],
      [{ ...record(), url: 'file:///etc/passwd' }, /not a valid record \(url\)/],
      [{ ...record(), url: 'http://' }, /not a valid record \(url\)/],
      [{ ...record(), salt: `0x${'45'.repeat(32)}` }, /names channel 0x[0-9a-f]{64}, but its payer/],
      [{ ...record(), chainId: 1 }, /names channel|not under its own chain's key/],
    ] as const) {
      records[key] = bad
      // Skipped, not thrown: one bad record must not stop the others (nothing read on chain for it).
      const sessions = sessionClient({ ...options, channelStore: store })
      expect(await sessions.restore()).toEqual([])
      const [skipped, ...more] = sessions.skipped()
      expect(more).toEqual([])
      expect(skipped).toMatchObject({ key, reason: 'invalid' })
      expect(`saved channel ${JSON.stringify(skipped!.key)} ${skipped!.problem}`).toMatch(pattern)
      expect(records[key]).toBe(bad)
    }
  })
})

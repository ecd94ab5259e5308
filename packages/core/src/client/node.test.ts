// `fileRecordStore`: the JSON file a rail's store keeps a client's records in across restarts
// (`fileChannelStore` of method-tempo and `fileSessionStore` of method-lightning are thin wrappers; their
// own tests check their names and messages). One running client per file, whole-file atomic writes,
// owner-only permissions, and clear errors for a file that is not one of its files.

import { spawn } from 'node:child_process'
import {
  existsSync,
  mkdirSync,
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
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigurationError } from '../Errors.js'
import { fileRecordStore } from './node.js'

describe('fileRecordStore', () => {
  let dir: string
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'mppkit-record-store-'))
  })
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  it('saves, loads and deletes records in one owner-only file written whole, read back by a new store', async () => {
    const path = join(dir, 'roundtrip.json')
    const store = fileRecordStore<{ n: number }>(path)
    expect(store.path).toBe(path)
    expect(await store.load()).toEqual({})
    expect(existsSync(path)).toBe(false)
    await store.save('a', { n: 1 })
    await store.save('b', { n: 2 })
    expect((statSync(path).mode & 0o777).toString(8)).toBe('600')
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ v: 1, records: { a: { n: 1 }, b: { n: 2 } } })
    // A copy: changing what load returned changes nothing kept.
    const loaded = await store.load()
    delete loaded.b
    await store.delete('a')
    await store.delete('missing')
    expect(await store.load()).toEqual({ b: { n: 2 } })
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([])
    store.close()
    expect(existsSync(`${path}.lock`)).toBe(false)
    const again = fileRecordStore(path)
    expect(await again.load()).toEqual({ b: { n: 2 } })
    again.close()
  })

  it('names its field, its errors and its records as the rail asks', async () => {
    const path = join(dir, 'named.json')
    const store = fileRecordStore(path, { name: 'fileSessionStore', field: 'sessions', noun: 'session' })
    await store.save('k', { v: 1 })
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ v: 1, sessions: { k: { v: 1 } } })
    const other = fileRecordStore(path, { name: 'fileSessionStore', field: 'sessions', noun: 'session' })
    await expect(other.load()).rejects.toThrow(
      /^fileSessionStore: .* is in use by another session store of this process \(one running client per session file\)$/,
    )
    store.close()
    // The same file read with another field is not one of its files.
    const wrongField = fileRecordStore(path)
    await expect(wrongField.load()).rejects.toThrow(
      /^fileRecordStore: .* is not a record file \(expected \{"v":1,"records":\{…\}\}\); fix or remove it$/,
    )
    wrongField.close()
    expect(() => fileRecordStore('', { name: 'fileSessionStore' })).toThrow(
      new ConfigurationError('fileSessionStore: path must be a non-empty string'),
    )
  })

  it('a failed write leaves the file and what the store holds as they were', async () => {
    const path = join(dir, 'failed-write.json')
    const store = fileRecordStore(path)
    await store.save('a', { n: 1 })
    // The temporary file cannot be created (a directory has its name): nothing is replaced.
    const temporary = `${path}.${process.pid}.tmp`
    mkdirSync(temporary)
    await expect(store.save('a', { n: 2 })).rejects.toThrow()
    expect(JSON.parse(readFileSync(path, 'utf8')).records).toEqual({ a: { n: 1 } })
    expect(await store.load()).toEqual({ a: { n: 1 } })
    rmSync(temporary, { recursive: true })
    // Later operations still run (the queue is not stuck on the failure).
    await store.save('a', { n: 3 })
    expect(await store.load()).toEqual({ a: { n: 3 } })
    store.close()
  })

  it('keeps a second client off the file: another store of this process (of any rail), or a live process holding the lock', async () => {
    const path = join(dir, 'locked.json')
    const first = fileRecordStore(path)
    await first.save('a', 1)
    expect(readFileSync(`${path}.lock`, 'utf8')).toBe(String(process.pid))
    const second = fileRecordStore(path, { name: 'fileChannelStore', noun: 'channel' })
    await expect(second.load()).rejects.toThrow(ConfigurationError)
    await expect(second.load()).rejects.toThrow(/in use by another channel store of this process/)
    first.close()
    expect(existsSync(`${path}.lock`)).toBe(false)
    second.close()

    // A lock naming a running process (a child that waits) refuses; once that process has ended, its
    // lock is taken over.
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' })
    try {
      writeFileSync(`${path}.lock`, String(child.pid))
      const third = fileRecordStore(path)
      await expect(third.load()).rejects.toThrow(new RegExp(`in use by process ${child.pid} `))
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill()
      await exited
      expect(await third.load()).toEqual({ a: 1 })
      expect(readFileSync(`${path}.lock`, 'utf8')).toBe(String(process.pid))
      third.close()
    } finally {
      child.kill()
    }
  })

  it('a lock naming no process is held while fresh and taken over once old; a store never removes a lock it does not hold', async () => {
    const path = join(dir, 'odd-lock.json')
    writeFileSync(`${path}.lock`, '')
    const store = fileRecordStore(path)
    await expect(store.load()).rejects.toThrow(/in use by another process/)
    const old = new Date(Date.now() - 120_000)
    utimesSync(`${path}.lock`, old, old)
    expect(await store.load()).toEqual({})
    expect(readFileSync(`${path}.lock`, 'utf8')).toBe(String(process.pid))
    writeFileSync(`${path}.lock`, '1')
    store.close()
    expect(readFileSync(`${path}.lock`, 'utf8')).toBe('1')
    rmSync(`${path}.lock`)
    expect(readdirSync(dir).filter((name) => name.startsWith('odd-lock.json.lock.'))).toEqual([])
  })

  it('refuses a file that is not JSON, naming it and never its contents', async () => {
    const path = join(dir, 'not-json.json')
    writeFileSync(path, '{"v":1,"records":{"a":{"preimage":"secret-looking')
    const store = fileRecordStore(path)
    const error = await store.load().catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(ConfigurationError)
    expect((error as Error).message).toMatch(/is not JSON; fix or remove it/)
    expect((error as Error).message).not.toMatch(/secret-looking/)
    store.close()
  })
})

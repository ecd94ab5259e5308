import { describe, expect, it } from 'vitest'
import { commonOptions } from '../../core/src/cli/rail.js'
import { railOptions } from '../../core/src/internal/railCli.js'
import { options, pay } from '../src/cli.js'

// The command line of `mppkit pay` for Solana, without a node: nothing here gets past the usage checks.
describe('mppkit pay (solana): its command line', () => {
  it('is read by mppkit pay with the same options, so that the value of --rpc-url is never probed as <url>', () => {
    for (const [flag, option] of Object.entries(options)) {
      expect(Object.hasOwn(commonOptions, flag), flag).toBe(false)
      expect(railOptions[flag as keyof typeof railOptions]?.value, flag).toBe(option.value)
    }
  })

  it('takes sol or a mint address for --currency, and never echoes anything else given there', async () => {
    const secret = '4wBqpZM9xaSheZzJSMawUKKwhdpChKbZ5eu5ky4Vigw8kNuYPvPWMBQzpbgZ1gYj2J8nB9ZjFvAQN7L2m1ZbdBxQ'
    let stderr = ''
    const io = {
      stdout: () => {},
      stderr: (text: string) => {
        stderr += text
      },
    }
    expect(await pay(['https://api.example/paid', '--currency', secret, '--max-amount', '1'], io)).toBe(2)
    expect(stderr.split('\n')[0]).toBe(
      'mppkit pay: --currency takes sol or a mint address (base58); the 88 characters given are not one (not shown)',
    )
    expect(stderr).not.toContain(secret.slice(0, 12))
  })

  it('never echoes a base58 secret key given without its flag', async () => {
    const secret = '4wBqpZM9xaSheZzJSMawUKKwhdpChKbZ5eu5ky4Vigw8kNuYPvPWMBQzpbgZ1gYj2J8nB9ZjFvAQN7L2m1ZbdBxQ'
    for (const argv of [['https://api.example/paid', '--yes', secret], [secret]]) {
      let stderr = ''
      const io = {
        stdout: () => {},
        stderr: (text: string) => {
          stderr += text
        },
      }
      expect(await pay(argv, io), argv.join(' ')).toBe(2)
      expect(stderr).toMatch(/^mppkit pay: (one <url> only|<url> must be)/)
      expect(stderr).not.toContain(secret.slice(0, 12))
    }
  })
})

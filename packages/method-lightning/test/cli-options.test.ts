import { describe, expect, it } from 'vitest'
import { commonOptions } from '../../core/src/cli/rail.js'
import { railOptions } from '../../core/src/internal/railCli.js'
import { options, pay } from '../src/cli.js'

// The command line of `mppkit pay` for Lightning, without a node: nothing here gets past the usage checks.
describe('mppkit pay (lightning): its command line', () => {
  it('is read by mppkit pay with the same options, so that the value of --lnd-socket is never probed as <url>', () => {
    for (const [flag, option] of Object.entries(options)) {
      expect(Object.hasOwn(commonOptions, flag), flag).toBe(false)
      expect(railOptions[flag as keyof typeof railOptions]?.value, flag).toBe(option.value)
    }
  })

  it('never echoes a macaroon given without its flag', async () => {
    const secret = '0201036c6e6402f801030a10c1b0a4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8'
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

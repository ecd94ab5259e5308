import { describe, expect, it } from 'vitest'
import { commonOptions } from '../../core/src/cli/rail.js'
import { railOptions } from '../../core/src/internal/railCli.js'
import { options, pay } from '../src/cli.js'

// The command line of `mppkit pay` for Stripe, without a node: nothing here gets past the usage checks.
describe('mppkit pay (stripe): its command line', () => {
  it('is read by mppkit pay with the same options, so that the value of --api-base is never probed as <url>', () => {
    for (const [flag, option] of Object.entries(options)) {
      expect(Object.hasOwn(commonOptions, flag), flag).toBe(false)
      expect(railOptions[flag as keyof typeof railOptions]?.value, flag).toBe(option.value)
    }
  })

  it("never echoes the agent platform's secret key given without its flag", async () => {
    const secret = 'sk_live_51Habcdefghijklmnopqrstuvwxyz0123456789'
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

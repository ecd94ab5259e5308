import {
  encodeFunctionData,
  erc20Abi,
  keccak256,
  parseEventLogs,
  toFunctionSignature,
  toHex,
  zeroAddress,
} from 'viem'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  streamChannelEscrowAbi,
  type TempoDevnet,
  tempoClients,
  tempoGas,
  tempoUnavailableReason,
  tempoVoucherTypedData,
} from '../src/tempo/index.js'

// Interop with the reference SDK: mppx's legacy (contract-backed, sessionProtocol "v1") session code
// must be able to read, compute ids for, and settle vouchers against the devnet escrow unmodified.
const mppx = await import('mppx/tempo').catch(() => undefined)
const reason = mppx ? tempoUnavailableReason() : 'mppx is not installed'
if (reason) console.warn(`[skip] ${reason}`)

describe.skipIf(!!reason)('StreamChannelEscrow ↔ mppx legacy session', () => {
  let devnet: TempoDevnet
  const legacy = mppx!.SessionLegacy.Session

  beforeAll(async () => {
    devnet = await startTempo({ accounts: 3 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  it('has every function and event of the escrow ABI mppx calls, with the same shapes', () => {
    const ours = new Map(
      streamChannelEscrowAbi
        .filter((item) => item.type === 'function' || item.type === 'event' || item.type === 'error')
        .map((item) => [toFunctionSignature(item as any), item]),
    )
    for (const item of legacy.Chain.escrowAbi) {
      if (item.type !== 'function' && item.type !== 'event' && item.type !== 'error') continue
      const signature = toFunctionSignature(item as any)
      const match = ours.get(signature) as any
      expect(match, `missing ${item.type} ${signature}`).toBeDefined()
      if (item.type === 'function') {
        // Output tuples are decoded positionally: types and component order must agree exactly.
        const shape = (outputs: readonly any[]): unknown =>
          outputs.map((output) => ({
            type: output.type,
            ...(output.components ? { components: shape(output.components) } : {}),
          }))
        expect(shape(match.outputs), signature).toEqual(shape(item.outputs))
        if ((item.outputs[0] as any)?.components) {
          expect(match.outputs[0].components.map((c: any) => c.name)).toEqual(
            (item.outputs[0] as any).components.map((c: any) => c.name),
          )
        }
        expect(match.stateMutability).toBe(item.stateMutability)
      }
      if (item.type === 'event') {
        expect(match.inputs.map((input: any) => input.indexed ?? false)).toEqual(
          item.inputs.map((input: any) => input.indexed ?? false),
        )
      }
    }
  })

  it('mppx computes the channel id, signs a voucher the escrow settles, and reads the channel', async () => {
    const { info } = devnet
    const payer = tempoClients({ ...info, privateKey: info.accounts[0]!.privateKey })
    const payee = tempoClients({ ...info, privateKey: info.accounts[1]!.privateKey })
    const token = info.tokens.pathUsd
    const salt = keccak256(toHex('mppx-interop'))
    const receipt = await payer.walletClient.sendTransactionSync({
      gas: tempoGas.open,
      calls: [
        {
          to: token,
          data: encodeFunctionData({ abi: erc20Abi, functionName: 'approve', args: [info.escrow, 90_000n] }),
        },
        {
          to: info.escrow,
          data: encodeFunctionData({
            abi: streamChannelEscrowAbi,
            functionName: 'open',
            args: [payee.account.address, token, 90_000n, salt, zeroAddress],
          }),
        },
      ],
    })
    expect(receipt.status).toBe('success')
    const [opened] = parseEventLogs({
      abi: legacy.Chain.escrowAbi,
      logs: receipt.logs,
      eventName: 'ChannelOpened',
    })
    const channelId = legacy.Channel.computeId({
      payer: payer.account.address,
      payee: payee.account.address,
      token,
      salt,
      authorizedSigner: zeroAddress,
      escrowContract: info.escrow,
      chainId: info.chainId,
    })
    expect(opened!.args.channelId).toBe(channelId)
    expect(opened!.args.salt).toBe(salt)

    const onChain = await legacy.Chain.getOnChainChannel(payer.publicClient as any, info.escrow, channelId)
    expect(onChain).toMatchObject({
      payer: payer.account.address,
      payee: payee.account.address,
      deposit: 90_000n,
      settled: 0n,
      finalized: false,
    })

    const signature = await legacy.Voucher.signVoucher(
      payer.walletClient as any,
      payer.account,
      { channelId, cumulativeAmount: 40_000n },
      info.escrow,
      info.chainId,
    )
    // Our typed data and mppx's agree: mppx verifies a voucher signed from tempoVoucherTypedData().
    const ours = await payer.account.signTypedData(
      tempoVoucherTypedData({
        chainId: info.chainId,
        escrow: info.escrow,
        channelId,
        cumulativeAmount: 40_000n,
      }),
    )
    expect(
      await legacy.Voucher.verifyVoucher(
        info.escrow,
        info.chainId,
        { channelId, cumulativeAmount: 40_000n, signature: ours },
        payer.account.address,
      ),
    ).toBe(true)

    const settled = await payee.walletClient.writeContractSync({
      address: info.escrow,
      abi: legacy.Chain.escrowAbi,
      functionName: 'settle',
      args: [channelId, 40_000n, signature],
      gas: tempoGas.settle,
    })
    expect(settled.status).toBe('success')
    const after = await legacy.Chain.getOnChainChannel(payer.publicClient as any, info.escrow, channelId)
    expect(after.settled).toBe(40_000n)
  })
})

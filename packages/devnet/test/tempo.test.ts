import {
  type Address,
  encodeFunctionData,
  erc20Abi,
  type Hex,
  keccak256,
  parseEventLogs,
  parseSignature,
  stringToHex,
  toHex,
  zeroAddress,
} from 'viem'
import type { PrivateKeyAccount } from 'viem/accounts'
import { Abis, Actions } from 'viem/tempo'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  advanceTempoTime,
  eip3009TokenAbi,
  fundEip3009,
  fundTip20,
  nonceLane,
  resolveAnvilBinary,
  sponsorTransaction,
  startTempo,
  streamChannelEscrowAbi,
  type TempoDevnet,
  type TempoPublicClient,
  type TempoWalletClient,
  tempoClients,
  tempoGas,
  tempoUnavailableReason,
  tempoVoucherTypedData,
  transferWithAuthorizationTypes,
} from '../src/tempo/index.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe.skipIf(!!reason)('startTempo', () => {
  let devnet: TempoDevnet

  beforeAll(async () => {
    devnet = await startTempo()
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  it('starts and reports a JSON-serializable info', () => {
    const { info, timings } = devnet
    expect(JSON.parse(JSON.stringify(info))).toEqual(info)
    expect(info.rpcUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(info.accounts).toHaveLength(10)
    expect(info.accounts.map((account) => account.address)).not.toContain(info.faucet)
    expect(info.tokens).toEqual({
      pathUsd: '0x20c0000000000000000000000000000000000000',
      alphaUsd: '0x20c0000000000000000000000000000000000001',
      betaUsd: '0x20c0000000000000000000000000000000000002',
      thetaUsd: '0x20c0000000000000000000000000000000000003',
    })
    console.log(
      `[tempo devnet] listening ${timings.listeningMs.toFixed(0)} ms, ready ${timings.readyMs.toFixed(0)} ms, ` +
        `deployed ${timings.totalMs.toFixed(0)} ms`,
    )
    // Start-up speed is measured by `npm run bench`, not here (a busy CI machine would make a tight
    // bound flaky); this bound only catches a start that hangs on something.
    expect(timings.totalMs).toBeLessThan(15_000)
  })

  it('answers the chain id it reports, through viem/tempo', async () => {
    const { publicClient } = tempoClients(devnet.info)
    expect(await publicClient.getChainId()).toBe(devnet.info.chainId)
    expect(devnet.info.chainId).toBe(31337)
  })

  it('dev accounts hold every TIP-20 token and match their private keys', async () => {
    const { info } = devnet
    for (const account of info.accounts) {
      const { account: local } = tempoClients({ ...info, privateKey: account.privateKey })
      expect(local.address).toBe(account.address)
    }
    const { publicClient } = tempoClients(info)
    for (const token of Object.values(info.tokens)) {
      const metadata = await Actions.token.getMetadata(publicClient, { token })
      expect(metadata.decimals).toBe(6)
      const balance = await publicClient.readContract({
        address: token,
        abi: Abis.tip20,
        functionName: 'balanceOf',
        args: [info.accounts[1]!.address],
      })
      expect(balance).toBeGreaterThan(10n ** 12n)
    }
  })

  it('transferWithMemo moves the balance and emits Transfer + TransferWithMemo (0x76, explicit gas)', async () => {
    const { info } = devnet
    const sender = info.accounts[1]!
    const recipient = info.accounts[2]!.address
    const { walletClient, publicClient } = tempoClients({ ...info, privateKey: sender.privateKey })
    const token = info.tokens.alphaUsd
    const before = await balanceOf(publicClient, token, recipient)
    const memo = stringToHex('order-42', { size: 32 })
    const result = await Actions.token.transferSync(walletClient, {
      token,
      to: recipient,
      amount: 1_234_567n,
      memo,
      gas: tempoGas.transfer,
    })
    expect(result.receipt.status).toBe('success')
    const transaction = await publicClient.getTransaction({ hash: result.receipt.transactionHash })
    expect(transaction.typeHex).toBe('0x76')
    expect(transaction.gas).toBe(tempoGas.transfer)
    expect(await balanceOf(publicClient, token, recipient)).toBe(before + 1_234_567n)

    const logs = parseEventLogs({ abi: Abis.tip20, logs: result.receipt.logs })
    const transfer = logs.find((log) => log.eventName === 'Transfer' && log.address.toLowerCase() === token)
    const withMemo = logs.find((log) => log.eventName === 'TransferWithMemo')
    expect(transfer?.args).toEqual({ from: sender.address, to: recipient, amount: 1_234_567n })
    expect(withMemo?.args).toEqual({ from: sender.address, to: recipient, amount: 1_234_567n, memo })
  })

  it('sends several payments from one account with nonceKey 0 and explicit nonces', async () => {
    const { info } = devnet
    const sender = info.accounts[3]!
    const recipient = info.accounts[4]!.address
    const { walletClient, publicClient, account } = tempoClients({ ...info, privateKey: sender.privateKey })
    const token = info.tokens.betaUsd
    const before = await balanceOf(publicClient, token, recipient)
    const lane = nonceLane(publicClient, account.address)
    const amounts = [11n, 22n, 33n]
    const results = await Promise.all(
      amounts.map(async (amount) =>
        Actions.token.transferSync(walletClient, {
          token,
          to: recipient,
          amount,
          gas: tempoGas.transfer,
          ...(await lane.next()),
        }),
      ),
    )
    expect(results.map((result) => result.receipt.status)).toEqual(['success', 'success', 'success'])
    expect(await balanceOf(publicClient, token, recipient)).toBe(before + 66n)
  })

  it('a fee payer co-signs a sender-signed transfer and pays its fee', async () => {
    const { info } = devnet
    const payer = tempoClients({ ...info, privateKey: info.accounts[5]!.privateKey })
    const sponsor = tempoClients({ ...info, privateKey: info.accounts[6]!.privateKey })
    const recipient = info.accounts[7]!.address
    const feeToken = info.tokens.pathUsd
    const payerFeeBefore = await balanceOf(payer.publicClient, feeToken, payer.account.address)
    const sponsorFeeBefore = await balanceOf(payer.publicClient, feeToken, sponsor.account.address)
    const recipientBefore = await balanceOf(payer.publicClient, info.tokens.alphaUsd, recipient)
    const request = await payer.walletClient.prepareTransactionRequest({
      calls: [
        {
          to: info.tokens.alphaUsd,
          data: encodeFunctionData({ abi: Abis.tip20, functionName: 'transfer', args: [recipient, 77n] }),
        },
      ],
      feePayer: true,
      gas: tempoGas.transfer,
      ...(await nonceLane(payer.publicClient, payer.account.address).next()),
    })
    const signed = await payer.walletClient.signTransaction(request as never)
    expect(signed.slice(0, 4)).toBe('0x78') // the fee-payer envelope, awaiting the sponsor
    const ready = await sponsorTransaction({
      walletClient: sponsor.walletClient,
      serializedTransaction: signed,
    })
    expect(ready.slice(0, 4)).toBe('0x76')
    const receipt = await sponsor.walletClient.sendRawTransactionSync({ serializedTransaction: ready })
    expect(receipt.status).toBe('success')
    expect(receipt.from.toLowerCase()).toBe(payer.account.address.toLowerCase())
    expect(await balanceOf(payer.publicClient, info.tokens.alphaUsd, recipient)).toBe(recipientBefore + 77n)
    expect(await balanceOf(payer.publicClient, feeToken, payer.account.address)).toBe(payerFeeBefore)
    expect(await balanceOf(payer.publicClient, feeToken, sponsor.account.address)).toBeLessThan(
      sponsorFeeBefore,
    )
  })

  it('fundTip20 gives a fresh address tokens from the faucet', async () => {
    const { info } = devnet
    const fresh = '0x000000000000000000000000000000000000dEaD' as Address
    const { publicClient } = tempoClients(info)
    const before = await balanceOf(publicClient, info.tokens.thetaUsd, fresh)
    await fundTip20({
      rpcUrl: info.rpcUrl,
      from: info.faucet,
      token: info.tokens.thetaUsd,
      to: fresh,
      amount: 5n,
    })
    expect(await balanceOf(publicClient, info.tokens.thetaUsd, fresh)).toBe(before + 5n)
  })
})

describe.skipIf(!!reason)('session escrow (StreamChannelEscrow)', () => {
  let devnet: TempoDevnet

  beforeAll(async () => {
    devnet = await startTempo({ accounts: 4 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  async function openChannel(parameters: { deposit: bigint; authorizedSigner?: Address; salt: string }) {
    const { info } = devnet
    const payer = tempoClients({ ...info, privateKey: info.accounts[0]!.privateKey })
    const payee = tempoClients({ ...info, privateKey: info.accounts[1]!.privateKey })
    const token = info.tokens.alphaUsd
    const salt = keccak256(toHex(parameters.salt))
    const authorizedSigner = parameters.authorizedSigner ?? zeroAddress
    // approve + open in one 0x76 batch, as a session client does (draft-tempo-session-00 §open payload).
    const receipt = await payer.walletClient.sendTransactionSync({
      gas: tempoGas.open,
      calls: [
        {
          to: token,
          data: encodeFunctionData({
            abi: erc20Abi,
            functionName: 'approve',
            args: [info.escrow, parameters.deposit],
          }),
        },
        {
          to: info.escrow,
          data: encodeFunctionData({
            abi: streamChannelEscrowAbi,
            functionName: 'open',
            args: [payee.account.address, token, parameters.deposit, salt, authorizedSigner],
          }),
        },
      ],
    })
    expect(receipt.status).toBe('success')
    const [opened] = parseEventLogs({
      abi: streamChannelEscrowAbi,
      logs: receipt.logs,
      eventName: 'ChannelOpened',
    })
    const channelId = opened!.args.channelId
    const computed = await payer.publicClient.readContract({
      address: info.escrow,
      abi: streamChannelEscrowAbi,
      functionName: 'computeChannelId',
      args: [payer.account.address, payee.account.address, token, salt, authorizedSigner],
    })
    expect(computed).toBe(channelId)
    return { payer, payee, token, channelId }
  }

  it('open → voucher settle → close pays the payee and refunds the payer', async () => {
    const { info } = devnet
    const deposit = 1_000_000n
    const payerAddress = info.accounts[0]!.address
    const payeeAddress = info.accounts[1]!.address
    const { publicClient } = tempoClients(info)
    const token = info.tokens.alphaUsd
    const payerBefore = await balanceOf(publicClient, token, payerAddress)
    const payeeBefore = await balanceOf(publicClient, token, payeeAddress)

    const { payer, payee, channelId } = await openChannel({ deposit, salt: 'flow-1' })
    expect(await balanceOf(publicClient, token, info.escrow)).toBe(deposit)
    const state = await publicClient.readContract({
      address: info.escrow,
      abi: streamChannelEscrowAbi,
      functionName: 'getChannel',
      args: [channelId],
    })
    expect(state).toMatchObject({
      payer: payerAddress,
      payee: payeeAddress,
      deposit,
      settled: 0n,
      finalized: false,
    })

    const voucher = (cumulativeAmount: bigint) =>
      payer.account.signTypedData(
        tempoVoucherTypedData({ chainId: info.chainId, escrow: info.escrow, channelId, cumulativeAmount }),
      )
    // The on-chain digest equals the one viem signs (same domain and types as the spec).
    expect(
      await publicClient.readContract({
        address: info.escrow,
        abi: streamChannelEscrowAbi,
        functionName: 'getVoucherDigest',
        args: [channelId, 300_000n],
      }),
    ).toBe(
      (await import('viem')).hashTypedData(
        tempoVoucherTypedData({
          chainId: info.chainId,
          escrow: info.escrow,
          channelId,
          cumulativeAmount: 300_000n,
        }),
      ),
    )

    const settle = await payee.walletClient.writeContractSync({
      address: info.escrow,
      abi: streamChannelEscrowAbi,
      functionName: 'settle',
      args: [channelId, 300_000n, await voucher(300_000n)],
      gas: tempoGas.settle,
    })
    const [settled] = parseEventLogs({ abi: streamChannelEscrowAbi, logs: settle.logs, eventName: 'Settled' })
    expect(settled!.args).toMatchObject({
      cumulativeAmount: 300_000n,
      deltaPaid: 300_000n,
      newSettled: 300_000n,
    })
    expect(await balanceOf(publicClient, token, payeeAddress)).toBe(payeeBefore + 300_000n)

    // A replayed (non-increasing) voucher is refused on-chain.
    await expectRevert(
      payee,
      {
        address: info.escrow,
        abi: streamChannelEscrowAbi,
        functionName: 'settle',
        args: [channelId, 300_000n, await voucher(300_000n)],
      },
      'AmountNotIncreasing',
    )

    const close = await payee.walletClient.writeContractSync({
      address: info.escrow,
      abi: streamChannelEscrowAbi,
      functionName: 'close',
      args: [channelId, 450_000n, await voucher(450_000n)],
      gas: tempoGas.settle,
    })
    const [closed] = parseEventLogs({
      abi: streamChannelEscrowAbi,
      logs: close.logs,
      eventName: 'ChannelClosed',
    })
    expect(closed!.args).toMatchObject({ settledToPayee: 450_000n, refundedToPayer: 550_000n })
    expect(await balanceOf(publicClient, token, payeeAddress)).toBe(payeeBefore + 450_000n)
    expect(await balanceOf(publicClient, token, payerAddress)).toBe(payerBefore - 450_000n)
    expect(await balanceOf(publicClient, token, info.escrow)).toBe(0n)
  })

  it('rejects a voucher from the wrong signer, a high-s signature and a non-payee caller', async () => {
    const { info } = devnet
    const { payer, payee, channelId } = await openChannel({ deposit: 500_000n, salt: 'flow-2' })
    const stranger = tempoClients({ ...info, privateKey: info.accounts[2]!.privateKey })
    const typed = tempoVoucherTypedData({
      chainId: info.chainId,
      escrow: info.escrow,
      channelId,
      cumulativeAmount: 100n,
    })
    const settleCall = (signature: Hex) => ({
      address: info.escrow,
      abi: streamChannelEscrowAbi,
      functionName: 'settle',
      args: [channelId, 100n, signature],
    })
    await expectRevert(payee, settleCall(await stranger.account.signTypedData(typed)), 'InvalidSignature')
    const good = await payer.account.signTypedData(typed)
    // Flip s to n - s (and v): the same signer, but the spec says high-s "MUST" be rejected.
    const { r, s, yParity } = parseSignature(good)
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
    const highS = `${r}${(n - BigInt(s)).toString(16).padStart(64, '0')}${yParity === 0 ? '1c' : '1b'}` as Hex
    await expectRevert(payee, settleCall(highS), 'InvalidSignature')
    await expectRevert(stranger, settleCall(good), 'NotPayee')
    // The low-s original of the same signature settles.
    const receipt = await payee.walletClient.writeContractSync({
      ...settleCall(good),
      gas: tempoGas.settle,
    } as any)
    expect(receipt.status).toBe('success')
  })

  it('topUp adds to the deposit and cancels a pending close request', async () => {
    const { info } = devnet
    const { payer, channelId, token } = await openChannel({ deposit: 100_000n, salt: 'flow-topup' })
    await payer.walletClient.writeContractSync({
      address: info.escrow,
      abi: streamChannelEscrowAbi,
      functionName: 'requestClose',
      args: [channelId],
      gas: tempoGas.settle,
    })
    const pending = await payer.publicClient.readContract({
      address: info.escrow,
      abi: streamChannelEscrowAbi,
      functionName: 'getChannel',
      args: [channelId],
    })
    expect(pending.closeRequestedAt).toBeGreaterThan(0n)
    const receipt = await payer.walletClient.sendTransactionSync({
      gas: tempoGas.topUp,
      calls: [
        {
          to: token,
          data: encodeFunctionData({ abi: erc20Abi, functionName: 'approve', args: [info.escrow, 25_000n] }),
        },
        {
          to: info.escrow,
          data: encodeFunctionData({
            abi: streamChannelEscrowAbi,
            functionName: 'topUp',
            args: [channelId, 25_000n],
          }),
        },
      ],
    })
    expect(receipt.status).toBe('success')
    const events = parseEventLogs({ abi: streamChannelEscrowAbi, logs: receipt.logs }).map(
      (log) => log.eventName,
    )
    expect(events).toEqual(['CloseRequestCancelled', 'TopUp'])
    const after = await payer.publicClient.readContract({
      address: info.escrow,
      abi: streamChannelEscrowAbi,
      functionName: 'getChannel',
      args: [channelId],
    })
    expect(after).toMatchObject({ deposit: 125_000n, closeRequestedAt: 0n, finalized: false })
  })

  it('honours an authorized signer and the request-close / withdraw grace period', async () => {
    const { info } = devnet
    const delegate = tempoClients({ ...info, privateKey: info.accounts[3]!.privateKey })
    const { payer, payee, channelId, token } = await openChannel({
      deposit: 200_000n,
      authorizedSigner: delegate.account.address,
      salt: 'flow-3',
    })
    const signed = await delegate.account.signTypedData(
      tempoVoucherTypedData({
        chainId: info.chainId,
        escrow: info.escrow,
        channelId,
        cumulativeAmount: 50_000n,
      }),
    )
    await payee.walletClient.writeContractSync({
      address: info.escrow,
      abi: streamChannelEscrowAbi,
      functionName: 'settle',
      args: [channelId, 50_000n, signed],
      gas: tempoGas.settle,
    })
    const escrowCall = (functionName: 'requestClose' | 'withdraw') =>
      payer.walletClient.writeContractSync({
        address: info.escrow,
        abi: streamChannelEscrowAbi,
        functionName,
        args: [channelId],
        gas: tempoGas.settle,
      })
    await escrowCall('requestClose')
    await expectRevert(
      payer,
      { address: info.escrow, abi: streamChannelEscrowAbi, functionName: 'withdraw', args: [channelId] },
      'CloseNotReady',
    )
    await advanceTempoTime(info.rpcUrl, 15 * 60)
    const before = await balanceOf(payer.publicClient, token, payer.account.address)
    const receipt = await escrowCall('withdraw')
    const [closed] = parseEventLogs({
      abi: streamChannelEscrowAbi,
      logs: receipt.logs,
      eventName: 'ChannelClosed',
    })
    expect(closed!.args).toMatchObject({ settledToPayee: 50_000n, refundedToPayer: 150_000n })
    expect(await balanceOf(payer.publicClient, token, payer.account.address)).toBe(before + 150_000n)
  })
})

describe.skipIf(!!reason)('EIP-3009 token', () => {
  let devnet: TempoDevnet

  beforeAll(async () => {
    devnet = await startTempo({ accounts: 3 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  it('transferWithAuthorization moves funds once; the replay reverts', async () => {
    const { info } = devnet
    const payer = tempoClients({ ...info, privateKey: info.accounts[0]!.privateKey })
    const relayer = tempoClients({ ...info, privateKey: info.accounts[1]!.privateKey })
    const payTo = info.accounts[2]!.address
    const token = info.eip3009Token
    const read = (account: Address) =>
      relayer.publicClient.readContract({
        address: token,
        abi: eip3009TokenAbi,
        functionName: 'balanceOf',
        args: [account],
      })
    expect(await read(payer.account.address)).toBe(10n ** 12n)
    const now = BigInt(Math.floor(Date.now() / 1000))
    const message = {
      from: payer.account.address,
      to: payTo,
      value: 2_500n,
      validAfter: 0n,
      validBefore: now + 3_600n,
      nonce: keccak256(toHex('authorization-1')),
    }
    const signature = await payer.account.signTypedData({
      domain: {
        name: info.eip3009.name,
        version: info.eip3009.version,
        chainId: info.chainId,
        verifyingContract: token,
      },
      types: transferWithAuthorizationTypes,
      primaryType: 'TransferWithAuthorization',
      message,
    })
    const { v, r, s } = parseSignature(signature)
    const args = [
      message.from,
      message.to,
      message.value,
      message.validAfter,
      message.validBefore,
      message.nonce,
      Number(v),
      r,
      s,
    ] as const
    const before = await read(payTo)
    const receipt = await relayer.walletClient.writeContractSync({
      address: token,
      abi: eip3009TokenAbi,
      functionName: 'transferWithAuthorization',
      args,
      gas: tempoGas.default,
    })
    expect(receipt.status).toBe('success')
    expect(await read(payTo)).toBe(before + 2_500n)
    const used = parseEventLogs({ abi: eip3009TokenAbi, logs: receipt.logs, eventName: 'AuthorizationUsed' })
    expect(used[0]!.args).toEqual({ authorizer: payer.account.address, nonce: message.nonce })
    expect(
      await relayer.publicClient.readContract({
        address: token,
        abi: eip3009TokenAbi,
        functionName: 'authorizationState',
        args: [payer.account.address, message.nonce],
      }),
    ).toBe(true)

    // Replay with both signature forms: refused, balance unchanged.
    await expectRevert(
      relayer,
      { address: token, abi: eip3009TokenAbi, functionName: 'transferWithAuthorization', args },
      'AuthorizationAlreadyUsed',
    )
    await expectRevert(
      relayer,
      {
        address: token,
        abi: eip3009TokenAbi,
        functionName: 'transferWithAuthorization',
        args: [
          message.from,
          message.to,
          message.value,
          message.validAfter,
          message.validBefore,
          message.nonce,
          signature,
        ],
      },
      'AuthorizationAlreadyUsed',
    )
    expect(await read(payTo)).toBe(before + 2_500n)
  })

  it('the bytes-signature form works and a tampered value is refused', async () => {
    const { info } = devnet
    const payer = tempoClients({ ...info, privateKey: info.accounts[0]!.privateKey })
    const relayer = tempoClients({ ...info, privateKey: info.accounts[1]!.privateKey })
    const token = info.eip3009Token
    const now = BigInt(Math.floor(Date.now() / 1000))
    const message = {
      from: payer.account.address,
      to: info.accounts[2]!.address,
      value: 7n,
      validAfter: 0n,
      validBefore: now + 600n,
      nonce: keccak256(toHex('authorization-2')),
    }
    const signature = await payer.account.signTypedData({
      domain: {
        name: info.eip3009.name,
        version: info.eip3009.version,
        chainId: info.chainId,
        verifyingContract: token,
      },
      types: transferWithAuthorizationTypes,
      primaryType: 'TransferWithAuthorization',
      message,
    })
    const call = (value: bigint) => ({
      address: token,
      abi: eip3009TokenAbi,
      functionName: 'transferWithAuthorization',
      args: [
        message.from,
        message.to,
        value,
        message.validAfter,
        message.validBefore,
        message.nonce,
        signature,
      ],
    })
    await expectRevert(relayer, call(8n), 'InvalidSignature')
    const receipt = await relayer.walletClient.writeContractSync({
      ...call(7n),
      gas: tempoGas.default,
    } as any)
    expect(receipt.status).toBe('success')
  })

  it('fundEip3009 mints to a fresh address', async () => {
    const { info } = devnet
    const fresh = '0x000000000000000000000000000000000000bEEF' as Address
    await fundEip3009({
      rpcUrl: info.rpcUrl,
      from: info.faucet,
      token: info.eip3009Token,
      to: fresh,
      amount: 99n,
    })
    const { publicClient } = tempoClients(info)
    expect(
      await publicClient.readContract({
        address: info.eip3009Token,
        abi: eip3009TokenAbi,
        functionName: 'balanceOf',
        args: [fresh],
      }),
    ).toBe(99n)
  })
})

describe.skipIf(!!reason)('stop', () => {
  it('kills anvil by PID, is idempotent and frees the port', async () => {
    const devnet = await startTempo({ accounts: 1 })
    expect(isAlive(devnet.pid)).toBe(true)
    await Promise.all([devnet.stop(), devnet.stop()])
    await devnet.stop()
    expect(isAlive(devnet.pid)).toBe(false)
    await expect(
      fetch(devnet.info.rpcUrl, { method: 'POST', signal: AbortSignal.timeout(1_000) }),
    ).rejects.toThrow()
  })

  it('leaves no orphan when the parent process is SIGKILLed', async () => {
    // The parent must be a separate Node process we can SIGKILL (its exit handlers never run), so the
    // anvil launcher is bundled to plain JS with esbuild (a tsup/vitest dependency) for it to import.
    const esbuild = await import('esbuild').catch(() => undefined)
    if (!esbuild) {
      console.warn('[skip] esbuild is not importable; orphan test not run')
      return
    }
    const { spawn } = await import('node:child_process')
    const { mkdtempSync, rmSync } = await import('node:fs')
    const { tmpdir } = await import('node:os')
    const { join } = await import('node:path')
    const { fileURLToPath, pathToFileURL } = await import('node:url')
    const dir = mkdtempSync(join(tmpdir(), 'mppkit-tempo-'))
    const bundle = join(dir, 'anvil.mjs')
    try {
      await esbuild.build({
        entryPoints: [fileURLToPath(new URL('../src/tempo/anvil.ts', import.meta.url))],
        bundle: true,
        platform: 'node',
        format: 'esm',
        outfile: bundle,
        logLevel: 'silent',
        alias: { '@mppkit/core': fileURLToPath(new URL('../../core/src/index.ts', import.meta.url)) },
      })
      const script =
        `const { spawnAnvil } = await import(${JSON.stringify(pathToFileURL(bundle).href)});` +
        `const anvil = await spawnAnvil({ binary: ${JSON.stringify(resolveAnvilBinary())}, ` +
        `args: ['--network', 'tempo', '--accounts', '1'], host: '127.0.0.1', timeoutMs: 10000 });` +
        `console.log('anvil-pid ' + anvil.pid); setInterval(() => {}, 1000);`
      const parent = spawn(process.execPath, ['--input-type=module', '-e', script], {
        stdio: ['ignore', 'pipe', 'inherit'],
      })
      const anvilPid = await new Promise<number>((resolve, reject) => {
        let out = ''
        parent.stdout!.setEncoding('utf8')
        parent.stdout!.on('data', (chunk: string) => {
          out += chunk
          const match = /anvil-pid (\d+)/.exec(out)
          if (match) resolve(Number(match[1]))
        })
        parent.once('exit', (code) => reject(new Error(`parent exited early (${code})`)))
      })
      expect(isAlive(anvilPid)).toBe(true)
      parent.kill('SIGKILL')
      const deadline = Date.now() + 5_000
      while (isAlive(anvilPid) && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 50))
      expect(isAlive(anvilPid)).toBe(false)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

/**
 * Asserts a call reverts with the named custom error: the eth_call simulation decodes the error, and
 * the same call sent as a 0x76 transaction (explicit gas, so no estimation) is mined as reverted.
 */
async function expectRevert(
  clients: { publicClient: TempoPublicClient; walletClient: TempoWalletClient; account: PrivateKeyAccount },
  call: { address: Address; abi: readonly unknown[]; functionName: string; args: readonly unknown[] },
  errorName: string,
): Promise<void> {
  await expect(
    clients.publicClient.simulateContract({ ...call, account: clients.account } as any),
  ).rejects.toThrow(errorName)
  const receipt = await clients.walletClient.writeContractSync({ ...call, gas: tempoGas.default } as any)
  expect(receipt.status).toBe('reverted')
}

async function balanceOf(client: TempoPublicClient, token: Address, account: Address): Promise<bigint> {
  return client.readContract({ address: token, abi: Abis.tip20, functionName: 'balanceOf', args: [account] })
}

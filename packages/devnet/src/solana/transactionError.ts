/**
 * Converts litesvm's transaction errors into the JSON the Solana RPC sends (`"BlockhashNotFound"`,
 * `{ "InstructionError": [1, { "Custom": 1 }] }`, …), which `@solana/kit` turns into its typed errors,
 * and into the display text Agave puts in a preflight failure message.
 */

// Order of litesvm's TransactionErrorFieldless enum (= solana_transaction_error::TransactionError).
const transactionErrorNames = [
  'AccountInUse',
  'AccountLoadedTwice',
  'AccountNotFound',
  'ProgramAccountNotFound',
  'InsufficientFundsForFee',
  'InvalidAccountForFee',
  'AlreadyProcessed',
  'BlockhashNotFound',
  'CallChainTooDeep',
  'MissingSignatureForFee',
  'InvalidAccountIndex',
  'SignatureFailure',
  'InvalidProgramForExecution',
  'SanitizeFailure',
  'ClusterMaintenance',
  'AccountBorrowOutstanding',
  'WouldExceedMaxBlockCostLimit',
  'UnsupportedVersion',
  'InvalidWritableAccount',
  'WouldExceedMaxAccountCostLimit',
  'WouldExceedAccountDataBlockLimit',
  'TooManyAccountLocks',
  'AddressLookupTableNotFound',
  'InvalidAddressLookupTableOwner',
  'InvalidAddressLookupTableData',
  'InvalidAddressLookupTableIndex',
  'InvalidRentPayingAccount',
  'WouldExceedMaxVoteCostLimit',
  'WouldExceedAccountDataTotalLimit',
  'MaxLoadedAccountsDataSizeExceeded',
  'ResanitizationNeeded',
  'InvalidLoadedAccountsDataSizeLimit',
  'UnbalancedTransaction',
  'ProgramCacheHitMaxLimit',
  'CommitCancelled',
] as const

// Order of litesvm's InstructionErrorFieldless enum (= solana_instruction_error::InstructionError).
const instructionErrorNames = [
  'GenericError',
  'InvalidArgument',
  'InvalidInstructionData',
  'InvalidAccountData',
  'AccountDataTooSmall',
  'InsufficientFunds',
  'IncorrectProgramId',
  'MissingRequiredSignature',
  'AccountAlreadyInitialized',
  'UninitializedAccount',
  'UnbalancedInstruction',
  'ModifiedProgramId',
  'ExternalAccountLamportSpend',
  'ExternalAccountDataModified',
  'ReadonlyLamportChange',
  'ReadonlyDataModified',
  'DuplicateAccountIndex',
  'ExecutableModified',
  'RentEpochModified',
  'NotEnoughAccountKeys',
  'AccountDataSizeChanged',
  'AccountNotExecutable',
  'AccountBorrowFailed',
  'AccountBorrowOutstanding',
  'DuplicateAccountOutOfSync',
  'InvalidError',
  'ExecutableDataModified',
  'ExecutableLamportChange',
  'ExecutableAccountNotRentExempt',
  'UnsupportedProgramId',
  'CallDepth',
  'MissingAccount',
  'ReentrancyNotAllowed',
  'MaxSeedLengthExceeded',
  'InvalidSeeds',
  'InvalidRealloc',
  'ComputationalBudgetExceeded',
  'PrivilegeEscalation',
  'ProgramEnvironmentSetupFailure',
  'ProgramFailedToComplete',
  'ProgramFailedToCompile',
  'Immutable',
  'IncorrectAuthority',
  'AccountNotRentExempt',
  'InvalidAccountOwner',
  'ArithmeticOverflow',
  'UnsupportedSysvar',
  'IllegalOwner',
  'MaxAccountsDataAllocationsExceeded',
  'MaxAccountsExceeded',
  'MaxInstructionTraceLengthExceeded',
  'BuiltinProgramsMustConsumeComputeUnits',
  'BorshIoError',
] as const

/** The RPC's JSON for a transaction error. */
export type TransactionErrorJson = string | Record<string, unknown>

function instructionError(error: unknown): unknown {
  if (typeof error === 'number') return instructionErrorNames[error] ?? 'GenericError'
  const value = error as { code?: number; msg?: string }
  if (typeof value.code === 'number') return { Custom: value.code }
  if (typeof value.msg === 'string') return 'BorshIoError'
  return 'GenericError'
}

/**
 * Converts a litesvm error object into the RPC's transaction error JSON.
 *
 * @example
 * ```ts
 * toTransactionErrorJson(failed.err()) // { InstructionError: [1, { Custom: 1 }] }
 * ```
 */
export function toTransactionErrorJson(error: unknown): TransactionErrorJson {
  if (typeof error === 'number') return transactionErrorNames[error] ?? 'SanitizeFailure'
  const value = error as {
    err?: () => unknown
    index?: number
    accountIndex?: number
    constructor: { name: string }
  }
  if (typeof value.err === 'function')
    return { InstructionError: [value.index ?? 0, instructionError(value.err())] }
  if (typeof value.index === 'number') return { DuplicateInstruction: value.index }
  if (typeof value.accountIndex === 'number') {
    const name = value.constructor.name.includes('Restricted')
      ? 'ProgramExecutionTemporarilyRestricted'
      : 'InsufficientFundsForRent'
    return { [name]: { account_index: value.accountIndex } }
  }
  return 'SanitizeFailure'
}

const transactionErrorText: Record<string, string> = {
  AccountNotFound: 'Attempt to debit an account but found no record of a prior credit.',
  AlreadyProcessed: 'This transaction has already been processed',
  BlockhashNotFound: 'Blockhash not found',
  InsufficientFundsForFee: 'Insufficient funds for fee',
  SignatureFailure: 'Transaction did not pass signature verification',
  ProgramAccountNotFound: 'Attempt to load a program that does not exist',
}

const instructionErrorText: Record<string, string> = {
  InsufficientFunds: 'insufficient funds for instruction',
  InvalidAccountData: 'invalid account data for instruction',
  InvalidInstructionData: 'invalid instruction data',
  MissingRequiredSignature: 'missing required signature for instruction',
  IncorrectProgramId: 'incorrect program id for instruction',
  InvalidArgument: 'invalid program argument',
  UninitializedAccount: 'instruction requires an initialized account',
  AccountAlreadyInitialized: 'instruction requires an uninitialized account',
}

/**
 * The human text of an error, as Agave writes it after "Transaction simulation failed: ".
 *
 * @example
 * ```ts
 * describeTransactionError({ InstructionError: [1, { Custom: 1 }] })
 * // 'Error processing Instruction 1: custom program error: 0x1'
 * ```
 */
export function describeTransactionError(error: TransactionErrorJson): string {
  if (typeof error === 'string') return transactionErrorText[error] ?? error
  const [name, detail] = Object.entries(error)[0] ?? ['Unknown', undefined]
  if (name === 'InstructionError' && Array.isArray(detail)) {
    const [index, inner] = detail as [number, unknown]
    const text =
      typeof inner === 'string'
        ? (instructionErrorText[inner] ?? inner)
        : `custom program error: 0x${Number((inner as { Custom: number }).Custom).toString(16)}`
    return `Error processing Instruction ${index}: ${text}`
  }
  if (name === 'InsufficientFundsForRent')
    return `Transaction results in an account (${(detail as { account_index: number }).account_index}) with insufficient funds for rent`
  return name
}

export {
  capabilities,
  challengesOf,
  credentialKey,
  McpPaymentError,
  maxChallengesLength,
  type Paid,
  type PaidClient,
  paymentRequiredCode,
  receiptKey,
  receiptOf,
  verificationFailedCode,
  wrap,
} from './PaidClient.js'

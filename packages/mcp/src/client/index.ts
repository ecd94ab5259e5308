export {
  capabilities,
  challengesOf,
  credentialKey,
  McpPaymentError,
  type Paid,
  type PaidClient,
  paymentRequiredCode,
  receiptKey,
  receiptOf,
  verificationFailedCode,
  wrap,
} from './PaidClient.js'

// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @dev The part of Uniswap Permit2's `ISignatureTransfer` this proxy calls.
interface ISignatureTransfer {
    struct TokenPermissions {
        address token;
        uint256 amount;
    }

    struct PermitTransferFrom {
        TokenPermissions permitted;
        uint256 nonce;
        uint256 deadline;
    }

    struct SignatureTransferDetails {
        address to;
        uint256 requestedAmount;
    }

    function permitWitnessTransferFrom(
        PermitTransferFrom calldata permit,
        SignatureTransferDetails calldata transferDetails,
        address owner,
        bytes32 witness,
        string calldata witnessTypeString,
        bytes calldata signature
    ) external;
}

/// @dev EIP-2612 `permit`, for `settleWithPermit`.
interface IERC20Permit {
    function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external;
}

/// @title X402ExactPermit2Proxy
/// @notice The spender of x402 `exact` payments whose `extra.assetTransferMethod` is `"permit2"`, written
///         for the mppkit devnet (not copied): its external interface is the one x402's EVM SDK (2.27) client
///         signs for and its facilitator calls (`x402ExactPermit2ProxyABI`), and the devnet places its
///         runtime code at x402's fixed address `0x402085c248EeA27D92E8b30b2C58ed07f9E20001`.
/// @dev The payer signs a Permit2 `PermitWitnessTransferFrom` with `spender` = this contract and the
///      witness `Witness(address to,uint256 validAfter)`. Permit2 binds the signature to `msg.sender`, so
///      only this contract can use it, and it moves exactly `permitted.amount` of `permitted.token` to
///      the signed `witness.to`: whoever submits (any facilitator) cannot redirect or resize a payment.
///      The reentrancy flag is 0 when unlocked, so code placed with `anvil_setCode` (empty storage)
///      starts unlocked; `PERMIT2` is an immutable, carried in the runtime code.
contract X402ExactPermit2Proxy {
    /// @notice The x402 witness: the payee and the earliest time the payment may settle.
    struct Witness {
        address to;
        uint256 validAfter;
    }

    /// @notice An EIP-2612 permit of the token to Permit2, signed by the payer (gas-sponsored approval).
    struct EIP2612Permit {
        uint256 value;
        uint256 deadline;
        bytes32 r;
        bytes32 s;
        uint8 v;
    }

    /// @notice The Permit2 contract this proxy calls.
    ISignatureTransfer public immutable PERMIT2;

    /// @notice What Permit2 appends to `PermitWitnessTransferFrom(TokenPermissions permitted,address spender,uint256 nonce,uint256 deadline,`:
    ///         the witness member, then the referenced struct types in alphabetical order (EIP-712 `encodeType`).
    string public constant WITNESS_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)";

    /// @notice keccak256("Witness(address to,uint256 validAfter)").
    bytes32 public constant WITNESS_TYPEHASH = keccak256("Witness(address to,uint256 validAfter)");

    uint256 private _entered;

    event Settled();
    event SettledWithPermit();

    error InvalidAmount();
    error InvalidDestination();
    error InvalidOwner();
    error InvalidPermit2Address();
    error PaymentTooEarly();
    error Permit2612AmountMismatch();
    error ReentrancyGuardReentrantCall();

    constructor(address permit2) {
        if (permit2 == address(0)) revert InvalidPermit2Address();
        PERMIT2 = ISignatureTransfer(permit2);
    }

    modifier nonReentrant() {
        if (_entered != 0) revert ReentrancyGuardReentrantCall();
        _entered = 1;
        _;
        _entered = 0;
    }

    /// @notice Moves `permit.permitted.amount` from `owner` to `witness.to` through Permit2.
    /// @dev Permit2 checks the deadline, the nonce (unordered, used once) and the signature over the permit,
    ///      this contract as spender and the witness hash; a failure reverts with Permit2's own error.
    function settle(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _settle(permit, owner, witness, signature);
        emit Settled();
    }

    /// @notice `settle`, after submitting the payer's EIP-2612 approval of Permit2 on the token.
    /// @dev The approval must be of exactly `permit.permitted.amount` (x402's proxy reverts
    ///      `Permit2612AmountMismatch` otherwise, so no payer approves more than it pays). The permit call
    ///      may fail because someone already submitted it (its nonce is used) or the token has no EIP-2612;
    ///      the transfer then stands or falls on the allowance Permit2 has, so that failure is ignored.
    function settleWithPermit(
        EIP2612Permit calldata permit2612,
        ISignatureTransfer.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        if (permit2612.value != permit.permitted.amount) revert Permit2612AmountMismatch();
        try IERC20Permit(permit.permitted.token).permit(
            owner, address(PERMIT2), permit2612.value, permit2612.deadline, permit2612.v, permit2612.r, permit2612.s
        ) {} catch {}
        _settle(permit, owner, witness, signature);
        emit SettledWithPermit();
    }

    function _settle(
        ISignatureTransfer.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) private {
        if (owner == address(0)) revert InvalidOwner();
        if (witness.to == address(0)) revert InvalidDestination();
        if (permit.permitted.amount == 0) revert InvalidAmount();
        if (block.timestamp < witness.validAfter) revert PaymentTooEarly();
        PERMIT2.permitWitnessTransferFrom(
            permit,
            ISignatureTransfer.SignatureTransferDetails({to: witness.to, requestedAmount: permit.permitted.amount}),
            owner,
            keccak256(abi.encode(WITNESS_TYPEHASH, witness.to, witness.validAfter)),
            WITNESS_TYPE_STRING,
            signature
        );
    }
}

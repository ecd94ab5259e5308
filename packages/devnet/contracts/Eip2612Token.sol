// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Eip3009Token} from "./Eip3009Token.sol";

/// @title Eip2612Token
/// @notice `Eip3009Token` with EIP-2612 `permit`, written for the mppkit devnet: an approval signed off
///         chain and submitted by anyone, as x402's `eip2612GasSponsoring` extension has a facilitator
///         submit the payer's approval of Permit2 (`settleWithPermit` of x402's Permit2 proxy). Both
///         signatures share the token's EIP-712 domain (`name`, `version`, chain id, this contract).
/// @dev The devnet keeps `Eip3009Token` without `permit` beside it, so flows that need a token without
///      EIP-2612 still have one.
contract Eip2612Token is Eip3009Token {
    /// @notice EIP-2612: keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)").
    bytes32 public constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    /// @notice EIP-2612: the nonce the next `permit` of `owner` must be signed with.
    mapping(address => uint256) public nonces;

    error PermitExpired();
    error InvalidOwner();

    constructor(
        string memory name_,
        string memory symbol_,
        string memory version_,
        uint8 decimals_,
        address[] memory holders,
        uint256 amountEach
    ) Eip3009Token(name_, symbol_, version_, decimals_, holders, amountEach) {}

    /// @notice EIP-2612: "will set `allowance(owner, spender)` to `value`, increment `nonces(owner)` by 1,
    ///         and emit a corresponding `Approval` event, if and only if the following conditions are met".
    /// @dev The conditions, in order: "The current blocktime is less than or equal to `deadline`";
    ///      "`owner` is not the zero address"; "`nonces[owner]` (before the state update) is equal to
    ///      `nonce`" and "`r`, `s` and `v` is a valid secp256k1 signature from `owner`" of the EIP-712
    ///      message (low-s, v 27/28, as `Eip3009Token` takes ECDSA signatures).
    function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
    {
        if (block.timestamp > deadline) revert PermitExpired();
        if (owner == address(0)) revert InvalidOwner();
        uint256 nonce = nonces[owner];
        bytes32 digest =
            _typedDataHash(keccak256(abi.encode(PERMIT_TYPEHASH, owner, spender, value, nonce, deadline)));
        if (uint256(s) > SECP256K1_HALF_ORDER || (v != 27 && v != 28)) revert InvalidSignature();
        address recovered = ecrecover(digest, v, r, s);
        if (recovered == address(0) || recovered != owner) revert InvalidSignature();
        nonces[owner] = nonce + 1;
        allowance[owner][spender] = value;
        emit Approval(owner, spender, value);
    }
}

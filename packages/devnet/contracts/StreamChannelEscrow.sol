// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @dev The two TIP-20 / ERC-20 calls the escrow makes.
interface ITokenTransfers {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// @title StreamChannelEscrow
/// @notice Contract-backed channel escrow for Tempo sessions (`sessionProtocol: "v1"`), written for the
///         mppkit devnet from draft-tempo-session-00 §"Channel Escrow Contract".
/// @dev The external ABI follows the deployed legacy escrow that reference clients (mppx) call:
///      `getChannel` returns the storage-ordered tuple
///      `(finalized, closeRequestedAt, payer, payee, token, authorizedSigner, deposit, settled)`,
///      `topUp` takes a `uint256` amount (the spec allows "uint256 instead of uint128") and
///      `ChannelOpened` carries the salt. Grace period: 15 minutes (spec: "at least 15 minutes").
contract StreamChannelEscrow {
    /// @dev One channel. Field order packs `finalized`, `closeRequestedAt` and `payer` into one slot.
    struct Channel {
        bool finalized;
        uint64 closeRequestedAt;
        address payer;
        address payee;
        address token;
        address authorizedSigner;
        uint128 deposit;
        uint128 settled;
    }

    /// @notice Delay between `requestClose` and `withdraw` (draft-tempo-session-00 §requestClose).
    uint64 public constant CLOSE_GRACE_PERIOD = 15 minutes;

    /// @notice Spec §"Signing Procedure": `keccak256("Voucher(bytes32 channelId,uint128 cumulativeAmount)")`.
    bytes32 public constant VOUCHER_TYPEHASH = keccak256("Voucher(bytes32 channelId,uint128 cumulativeAmount)");

    /// @notice Typed-data hash for an off-chain record of a close request (informative in the spec).
    bytes32 public constant CLOSE_REQUEST_TYPEHASH = keccak256("CloseRequest(bytes32 channelId,uint64 requestedAt)");

    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    // Spec §"Domain Separator": name "Tempo Stream Channel" for v1, version "1".
    bytes32 private constant NAME_HASH = keccak256("Tempo Stream Channel");
    bytes32 private constant VERSION_HASH = keccak256("1");
    // Spec §"Signature Malleability": "Signatures MUST have s <= secp256k1_order / 2".
    uint256 private constant SECP256K1_HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// @notice Channel state by id.
    mapping(bytes32 => Channel) public channels;

    event ChannelOpened(
        bytes32 indexed channelId,
        address indexed payer,
        address indexed payee,
        address token,
        address authorizedSigner,
        bytes32 salt,
        uint256 deposit
    );
    event Settled(
        bytes32 indexed channelId,
        address indexed payer,
        address indexed payee,
        uint256 cumulativeAmount,
        uint256 deltaPaid,
        uint256 newSettled
    );
    event CloseRequested(bytes32 indexed channelId, address indexed payer, address indexed payee, uint256 closeGraceEnd);
    event CloseRequestCancelled(bytes32 indexed channelId, address indexed payer, address indexed payee);
    event TopUp(
        bytes32 indexed channelId,
        address indexed payer,
        address indexed payee,
        uint256 additionalDeposit,
        uint256 newDeposit
    );
    event ChannelClosed(
        bytes32 indexed channelId,
        address indexed payer,
        address indexed payee,
        uint256 settledToPayee,
        uint256 refundedToPayer
    );
    event ChannelExpired(bytes32 indexed channelId, address indexed payer, address indexed payee);

    error ChannelAlreadyExists();
    error ChannelNotFound();
    error ChannelFinalized();
    error InvalidSignature();
    error AmountExceedsDeposit();
    error AmountNotIncreasing();
    error NotPayer();
    error NotPayee();
    error TransferFailed();
    error CloseNotReady();
    error InvalidPayee();
    error DepositOverflow();

    // ---------------------------------------------------------------- state-changing functions

    /// @notice Opens a channel; the caller becomes the payer and deposits `deposit` of `token`.
    function open(address payee, address token, uint128 deposit, bytes32 salt, address authorizedSigner)
        external
        returns (bytes32 channelId)
    {
        if (payee == address(0)) revert InvalidPayee();
        channelId = computeChannelId(msg.sender, payee, token, salt, authorizedSigner);
        if (channels[channelId].payer != address(0)) revert ChannelAlreadyExists();
        channels[channelId] = Channel({
            finalized: false,
            closeRequestedAt: 0,
            payer: msg.sender,
            payee: payee,
            token: token,
            authorizedSigner: authorizedSigner,
            deposit: deposit,
            settled: 0
        });
        _pull(token, msg.sender, deposit);
        emit ChannelOpened(channelId, msg.sender, payee, token, authorizedSigner, salt, deposit);
    }

    /// @notice Pays the payee `cumulativeAmount - settled` against a voucher, keeping the channel open.
    function settle(bytes32 channelId, uint128 cumulativeAmount, bytes calldata signature) external {
        Channel storage channel = _payeeChannel(channelId);
        if (cumulativeAmount > channel.deposit) revert AmountExceedsDeposit();
        // Spec §"Cumulative Semantics": "delta = cumulativeAmount - settled"; a voucher at or below
        // `settled` pays nothing and is refused.
        if (cumulativeAmount <= channel.settled) revert AmountNotIncreasing();
        _checkVoucher(channel, channelId, cumulativeAmount, signature);
        uint128 delta = cumulativeAmount - channel.settled;
        channel.settled = cumulativeAmount;
        _push(channel.token, channel.payee, delta);
        emit Settled(channelId, channel.payer, channel.payee, cumulativeAmount, delta, cumulativeAmount);
    }

    /// @notice Adds `additionalDeposit` to the channel and cancels a pending close request.
    function topUp(bytes32 channelId, uint256 additionalDeposit) external {
        Channel storage channel = _payerChannel(channelId);
        if (additionalDeposit > type(uint128).max - channel.deposit) revert DepositOverflow();
        channel.deposit += uint128(additionalDeposit);
        _pull(channel.token, msg.sender, additionalDeposit);
        // Spec §topUp: "If a close request is pending ... calling topUp() MUST cancel it by resetting
        // closeRequestedAt to zero and emitting a CloseRequestCancelled event."
        if (channel.closeRequestedAt != 0) {
            channel.closeRequestedAt = 0;
            emit CloseRequestCancelled(channelId, channel.payer, channel.payee);
        }
        emit TopUp(channelId, channel.payer, channel.payee, additionalDeposit, channel.deposit);
    }

    /// @notice Payee closes: settles the final voucher (when above `settled`) and refunds the rest.
    /// @dev `settledToPayee` in `ChannelClosed` is the channel's total settled amount after closing.
    function close(bytes32 channelId, uint128 cumulativeAmount, bytes calldata signature) external {
        Channel storage channel = _payeeChannel(channelId);
        uint128 settled = channel.settled;
        uint128 delta = 0;
        if (cumulativeAmount > settled) {
            if (cumulativeAmount > channel.deposit) revert AmountExceedsDeposit();
            _checkVoucher(channel, channelId, cumulativeAmount, signature);
            delta = cumulativeAmount - settled;
            settled = cumulativeAmount;
            channel.settled = settled;
        }
        uint128 refund = channel.deposit - settled;
        channel.finalized = true;
        if (delta > 0) _push(channel.token, channel.payee, delta);
        if (refund > 0) _push(channel.token, channel.payer, refund);
        emit ChannelClosed(channelId, channel.payer, channel.payee, settled, refund);
    }

    /// @notice Payer starts the forced-close grace period (no-op if one is already running).
    function requestClose(bytes32 channelId) external {
        Channel storage channel = _payerChannel(channelId);
        if (channel.closeRequestedAt == 0) {
            channel.closeRequestedAt = uint64(block.timestamp);
            emit CloseRequested(channelId, channel.payer, channel.payee, block.timestamp + CLOSE_GRACE_PERIOD);
        }
    }

    /// @notice Payer recovers the unsettled deposit once the grace period has passed.
    function withdraw(bytes32 channelId) external {
        Channel storage channel = _payerChannel(channelId);
        // Spec §withdraw: "Requires block.timestamp >= channel.closeRequestedAt + CLOSE_GRACE_PERIOD."
        if (channel.closeRequestedAt == 0 || block.timestamp < uint256(channel.closeRequestedAt) + CLOSE_GRACE_PERIOD) {
            revert CloseNotReady();
        }
        uint128 refund = channel.deposit - channel.settled;
        channel.finalized = true;
        if (refund > 0) _push(channel.token, channel.payer, refund);
        emit ChannelExpired(channelId, channel.payer, channel.payee);
        emit ChannelClosed(channelId, channel.payer, channel.payee, channel.settled, refund);
    }

    // ---------------------------------------------------------------- views

    /// @notice Channel state (all zero for an unknown id).
    function getChannel(bytes32 channelId) external view returns (Channel memory) {
        return channels[channelId];
    }

    /// @notice Several channel states in one call.
    function getChannelsBatch(bytes32[] calldata channelIds) external view returns (Channel[] memory channelStates) {
        channelStates = new Channel[](channelIds.length);
        for (uint256 i = 0; i < channelIds.length; ++i) {
            channelStates[i] = channels[channelIds[i]];
        }
    }

    /// @notice Spec §"Contract-Backed Channel State": keccak256(abi.encode(payer, payee, token, salt,
    ///         authorizedSigner, address(this), block.chainid)).
    function computeChannelId(address payer, address payee, address token, bytes32 salt, address authorizedSigner)
        public
        view
        returns (bytes32)
    {
        return keccak256(abi.encode(payer, payee, token, salt, authorizedSigner, address(this), block.chainid));
    }

    /// @notice EIP-712 digest a voucher signer signs.
    function getVoucherDigest(bytes32 channelId, uint128 cumulativeAmount) public view returns (bytes32) {
        return _typedDataHash(keccak256(abi.encode(VOUCHER_TYPEHASH, channelId, cumulativeAmount)));
    }

    /// @notice EIP-712 digest of a close request record.
    function getCloseRequestDigest(bytes32 channelId, uint64 requestedAt) external view returns (bytes32) {
        return _typedDataHash(keccak256(abi.encode(CLOSE_REQUEST_TYPEHASH, channelId, requestedAt)));
    }

    /// @notice Spec §"Domain Separator", computed for this chain and this contract address.
    function domainSeparator() public view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    /// @notice EIP-5267 domain description (name, version, chainId, verifyingContract are set: 0x0f).
    function eip712Domain()
        external
        view
        returns (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        )
    {
        return (hex"0f", "Tempo Stream Channel", "1", block.chainid, address(this), bytes32(0), new uint256[](0));
    }

    // ---------------------------------------------------------------- internals

    function _payeeChannel(bytes32 channelId) private view returns (Channel storage channel) {
        channel = channels[channelId];
        if (channel.payer == address(0)) revert ChannelNotFound();
        // Spec §"Access Control": settle and close are "Payee only".
        if (msg.sender != channel.payee) revert NotPayee();
        if (channel.finalized) revert ChannelFinalized();
    }

    function _payerChannel(bytes32 channelId) private view returns (Channel storage channel) {
        channel = channels[channelId];
        if (channel.payer == address(0)) revert ChannelNotFound();
        // Spec §"Access Control": topUp, requestClose and withdraw are "Payer only".
        if (msg.sender != channel.payer) revert NotPayer();
        if (channel.finalized) revert ChannelFinalized();
    }

    function _typedDataHash(bytes32 structHash) private view returns (bytes32) {
        return keccak256(abi.encodePacked(hex"1901", domainSeparator(), structHash));
    }

    /// @dev Spec §"Signature Verification": recover the EIP-712 signer, require low-s, and require it
    ///      equals `authorizedSigner` when set, otherwise the payer.
    function _checkVoucher(Channel storage channel, bytes32 channelId, uint128 cumulativeAmount, bytes calldata signature)
        private
        view
    {
        address expected = channel.authorizedSigner != address(0) ? channel.authorizedSigner : channel.payer;
        address signer = _recover(getVoucherDigest(channelId, cumulativeAmount), signature);
        if (signer == address(0) || signer != expected) revert InvalidSignature();
    }

    /// @dev Accepts a 65-byte `r || s || v` (v is 27 or 28) or a 64-byte EIP-2098 `r || vs` signature;
    ///      returns address(0) for anything else, including high-s values.
    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address) {
        bytes32 r;
        bytes32 s;
        uint8 v;
        if (signature.length == 65) {
            r = bytes32(signature[0:32]);
            s = bytes32(signature[32:64]);
            v = uint8(signature[64]);
        } else if (signature.length == 64) {
            r = bytes32(signature[0:32]);
            bytes32 vs = bytes32(signature[32:64]);
            s = vs & bytes32(0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff);
            v = uint8(uint256(vs >> 255)) + 27;
        } else {
            return address(0);
        }
        if (uint256(s) > SECP256K1_HALF_ORDER) return address(0);
        if (v != 27 && v != 28) return address(0);
        return ecrecover(digest, v, r, s);
    }

    /// @dev Token calls that accept both bool-returning and empty-returning tokens.
    function _pull(address token, address from, uint256 amount) private {
        _call(token, abi.encodeCall(ITokenTransfers.transferFrom, (from, address(this), amount)));
    }

    function _push(address token, address to, uint256 amount) private {
        _call(token, abi.encodeCall(ITokenTransfers.transfer, (to, amount)));
    }

    function _call(address token, bytes memory data) private {
        (bool ok, bytes memory result) = token.call(data);
        if (!ok || (result.length != 0 && !abi.decode(result, (bool)))) revert TransferFailed();
        if (result.length == 0 && token.code.length == 0) revert TransferFailed();
    }
}

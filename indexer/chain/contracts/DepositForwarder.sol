// SPDX-License-Identifier: MIT
// Forwarder deposit addresses (docs/collecting-funds.md). Each invoice's address is where
// ForwarderFactory would CREATE2 a DepositForwarder for (salt, treasury). Nothing lives there
// until a sweep; a sweep creates the forwarder, whose constructor sends every listed token and
// all native coin to the treasury and self-destructs in the same transaction (EIP-6780), so no
// code stays behind and the same address can be swept again when it receives more.
//
// Why funds can only reach the treasury: the treasury is a constructor argument, so it is part
// of the init code and hence of the address. A sweep that names another treasury computes
// another address, which holds nothing. The forwarder's only value-moving operations are
// token.transfer(treasury, balance) and selfdestruct(treasury); the caller chooses only which
// token contracts are asked, and a hostile "token" can do no more than refuse.
pragma solidity 0.8.30;

interface ITokenList {
    function sweepTokens() external view returns (address[] memory);
}

/// Raised when the transaction's gas could not finish a forwarder. A sweep never skips an
/// address silently for lack of gas, so eth_estimateGas (which searches for the least gas that
/// does not revert) always finds enough to move everything that can move.
error LowGas();

// Gas caps per token call, so a token that burns gas costs a bounded amount and cannot
// starve the tokens and addresses after it (real transfers use 30-70k, upgradeable ones too).
uint256 constant BALANCE_GAS = 100_000;
uint256 constant TRANSFER_GAS = 300_000;
uint256 constant TOKEN_RESERVE = BALANCE_GAS + TRANSFER_GAS + 20_000;
// the NativeSwept log (~2k) and selfdestruct to a possibly new account: 5k + 2.6k + 25k
uint256 constant FINISH_RESERVE = 42_000;
uint256 constant START_RESERVE = 120_000; // a forwarder's start: the token-list callback

contract DepositForwarder {
    /// The native coin this deposit address sends its treasury. selfdestruct moves coin without
    /// a call or a log, so this event is what the books see; its log's address is the deposit
    /// address itself, where only the factory can place this code, so no one else can forge it.
    event NativeSwept(address indexed treasury, uint256 amount);

    constructor(address payable treasury) payable {
        address[] memory tokens = ITokenList(msg.sender).sweepTokens();
        for (uint256 i = 0; i < tokens.length; ++i) {
            if (gasleft() < TOKEN_RESERVE) revert LowGas();
            _sweep(tokens[i], treasury);
        }
        if (gasleft() < FINISH_RESERVE) revert LowGas();
        uint256 amount = address(this).balance;
        if (amount > 0) emit NativeSwept(treasury, amount);
        // Moves all native coin, sent before or during this transaction, without calling the
        // treasury's code (a contract wallet that rejects plain transfers still receives it).
        selfdestruct(treasury);
    }

    /// Sends this address's whole balance of `token` to `treasury`. Every outcome is accepted:
    /// no return value (USDT on Ethereum), `false`, a revert, a gas burner or no code at all
    /// leave the other tokens' sweeps untouched, and none can send anything but to the treasury.
    function _sweep(address token, address treasury) private {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            mstore(ptr, shl(224, 0x70a08231)) // balanceOf(address)
            mstore(add(ptr, 4), address())
            let ok := staticcall(BALANCE_GAS, token, ptr, 0x24, ptr, 0x20)
            if and(ok, gt(returndatasize(), 0x1f)) {
                let held := mload(ptr)
                if held {
                    mstore(ptr, shl(224, 0xa9059cbb)) // transfer(address,uint256)
                    mstore(add(ptr, 4), treasury)
                    mstore(add(ptr, 0x24), held)
                    pop(call(TRANSFER_GAS, token, 0, ptr, 0x44, 0, 0))
                }
            }
        }
    }
}

/// Deploys-and-sweeps batches of deposit addresses. Stateless between transactions: the token
/// list of a sweep lives in transient storage (EIP-1153) for the forwarders to read back.
contract ForwarderFactory is ITokenList {
    uint256 private constant LOCK = 0x6c6f636b; // transient slot; the token list follows it
    uint256 private constant LIST = 0x6c697374;

    error Reentered();

    /// For each salt, creates the forwarder of (salt, treasury), which sweeps `tokens` and all
    /// native coin to `treasury` and is gone by the end of the transaction. A salt whose
    /// forwarder cannot be created is skipped (the books show what moved), except for lack of
    /// gas, which reverts the whole sweep.
    function sweep(address payable treasury, bytes32[] calldata salts, address[] calldata tokens)
        external
    {
        assembly ("memory-safe") {
            if tload(LOCK) {
                mstore(0, 0xb5dfd9e5) // Reentered()
                revert(0x1c, 4)
            }
            tstore(LOCK, 1)
            tstore(LIST, tokens.length)
            for { let i := 0 } lt(i, tokens.length) { i := add(i, 1) } {
                tstore(add(add(LIST, 1), i), calldataload(add(tokens.offset, shl(5, i))))
            }
        }
        bytes memory init = _initCode(treasury);
        assembly ("memory-safe") {
            let code := add(init, 0x20)
            let size := mload(init)
            for { let i := 0 } lt(i, salts.length) { i := add(i, 1) } {
                if lt(gas(), START_RESERVE) {
                    mstore(0, 0x4a48966d) // LowGas()
                    revert(0x1c, 4)
                }
                if iszero(create2(0, code, size, calldataload(add(salts.offset, shl(5, i))))) {
                    // bubble up a forwarder's LowGas(); any other failure skips the address
                    if eq(returndatasize(), 4) {
                        returndatacopy(0, 0, 4)
                        if eq(shr(224, mload(0)), 0x4a48966d) { revert(0, 4) }
                    }
                }
            }
            tstore(LIST, 0)
            tstore(LOCK, 0)
        }
    }

    /// The token list of the sweep under way (read by the forwarders' constructors).
    function sweepTokens() external view returns (address[] memory tokens) {
        assembly ("memory-safe") {
            let n := tload(LIST)
            tokens := mload(0x40)
            mstore(tokens, n)
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                mstore(add(add(tokens, 0x20), shl(5, i)), tload(add(add(LIST, 1), i)))
            }
            mstore(0x40, add(add(tokens, 0x20), shl(5, n)))
        }
    }

    /// The deposit address of (treasury, salt): where sweep() creates its forwarder.
    function depositAddress(address treasury, bytes32 salt) external view returns (address) {
        bytes32 digest = keccak256(
            abi.encodePacked(bytes1(0xff), address(this), salt, keccak256(_initCode(treasury)))
        );
        return address(uint160(uint256(digest)));
    }

    function _initCode(address treasury) private pure returns (bytes memory) {
        return abi.encodePacked(type(DepositForwarder).creationCode, abi.encode(treasury));
    }
}

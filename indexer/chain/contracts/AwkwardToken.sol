// SPDX-License-Identifier: MIT
// Test only: an ERC20 whose `transfer` misbehaves the way real tokens do, switched at run time.
//   0 standard: returns true
//   1 no return value (USDT on Ethereum): moves, returns nothing
//   2 returns false and moves nothing
//   3 reverts (a paused or blacklisting token)
//   4 burns all the gas it is given
pragma solidity 0.8.30;

contract AwkwardToken {
    uint8 public decimals;
    uint8 public mode;
    mapping(address => uint256) public balanceOf;

    event Transfer(address indexed from, address indexed to, uint256 value);

    constructor(uint8 decimals_, uint8 mode_) {
        decimals = decimals_;
        mode = mode_;
    }

    function setMode(uint8 mode_) external {
        mode = mode_;
    }

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function transfer(address to, uint256 amount) external returns (bool) {
        uint8 m = mode;
        if (m == 2) return false;
        if (m == 3) revert("paused");
        if (m == 4) {
            while (true) {}
        }
        uint256 held = balanceOf[msg.sender];
        require(held >= amount, "balance");
        unchecked {
            balanceOf[msg.sender] = held - amount;
        }
        balanceOf[to] += amount;
        emit Transfer(msg.sender, to, amount);
        if (m == 1) {
            assembly {
                return(0, 0)
            }
        }
        return true;
    }
}

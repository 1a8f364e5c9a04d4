// SPDX-License-Identifier: MIT
// Sends native coin on through internal calls, which no transaction list shows: the indexer
// must find such payments in call traces.
pragma solidity ^0.8.20;

contract Forwarder {
    function forward(address payable to) external payable {
        (bool ok, ) = to.call{value: msg.value}("");
        require(ok, "forward failed");
    }

    function split(address payable[] calldata to, uint256[] calldata amounts) external payable {
        require(to.length == amounts.length, "length mismatch");
        uint256 total;
        for (uint256 i = 0; i < to.length; i++) {
            total += amounts[i];
            (bool ok, ) = to[i].call{value: amounts[i]}("");
            require(ok, "split failed");
        }
        require(total == msg.value, "value mismatch");
    }
}

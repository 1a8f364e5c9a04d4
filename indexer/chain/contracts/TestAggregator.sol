// SPDX-License-Identifier: MIT
// A price feed for development and tests only: Chainlink's AggregatorV3Interface (decimals,
// description, version, latestRoundData, getRoundData) with every field settable by anyone, so
// tests can make it stale, zero, negative, incomplete or reverting.
pragma solidity ^0.8.20;

contract TestAggregator {
    uint8 public decimals;
    string public description;
    uint256 public constant version = 4;
    bool public reverts;

    uint80 private roundId;
    int256 private answer;
    uint256 private startedAt;
    uint256 private updatedAt;
    uint80 private answeredInRound;

    constructor(uint8 decimals_, string memory description_) {
        decimals = decimals_;
        description = description_;
    }

    /// A new complete round answering `answer_`, updated now.
    function setAnswer(int256 answer_) external {
        roundId += 1;
        answer = answer_;
        startedAt = block.timestamp;
        updatedAt = block.timestamp;
        answeredInRound = roundId;
    }

    /// Any round at all, including stale or incomplete ones.
    function setRound(
        uint80 roundId_,
        int256 answer_,
        uint256 startedAt_,
        uint256 updatedAt_,
        uint80 answeredInRound_
    ) external {
        roundId = roundId_;
        answer = answer_;
        startedAt = startedAt_;
        updatedAt = updatedAt_;
        answeredInRound = answeredInRound_;
    }

    function setReverts(bool reverts_) external {
        reverts = reverts_;
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        require(!reverts, "No data present");
        return (roundId, answer, startedAt, updatedAt, answeredInRound);
    }

    function getRoundData(uint80 id) external view returns (uint80, int256, uint256, uint256, uint80) {
        require(!reverts && id == roundId, "No data present");
        return (roundId, answer, startedAt, updatedAt, answeredInRound);
    }
}

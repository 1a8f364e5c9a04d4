"""Decoding raw JSON-RPC blocks, Transfer logs and call traces into typed values."""

from __future__ import annotations

from typing import Any

import pytest

from indexer.chain.decode import (
    TRANSFER_TOPIC,
    Block,
    InternalTransfer,
    TokenTransfer,
    decode_block,
    decode_internal_transfers,
    decode_transfer_log,
)

SENDER = "0x" + "11" * 20
RECIPIENT = "0x" + "ab" * 20
TOKEN = "0x" + "cd" * 20
BLOCK_HASH = "0x" + "0b" * 32
TX_HASH = "0x" + "0e" * 32


def topic(address: str) -> str:
    return "0x" + "00" * 12 + address.removeprefix("0x")


def word(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def transfer_log(**overrides: Any) -> dict[str, Any]:
    log = {
        "address": TOKEN.upper().replace("0X", "0x"),
        "topics": [TRANSFER_TOPIC, topic(SENDER), topic(RECIPIENT.upper().replace("0X", "0x"))],
        "data": word(1_500_000),
        "blockNumber": "0x10",
        "blockHash": BLOCK_HASH,
        "transactionHash": TX_HASH,
        "logIndex": "0x3",
        "removed": False,
    }
    log.update(overrides)
    return log


def test_transfer_log_decodes_to_lowercase_addresses_and_int_amount() -> None:
    # given a well-formed ERC20 Transfer log with mixed-case addresses
    log = transfer_log()
    # when decoded
    transfer = decode_transfer_log(log)
    # then every field is typed, addresses are lowercase hex
    assert transfer == TokenTransfer(
        block_number=16,
        block_hash=BLOCK_HASH,
        tx_hash=TX_HASH,
        log_index=3,
        contract=TOKEN,
        from_address=SENDER,
        to_address=RECIPIENT,
        amount=1_500_000,
    )


@pytest.mark.parametrize("amount", [0, 1, 10**18, 2**128, 2**256 - 1], ids=repr)
def test_transfer_amount_round_trips_exactly_up_to_uint256_max(amount: int) -> None:
    transfer = decode_transfer_log(transfer_log(data=word(amount)))
    assert transfer is not None
    assert transfer.amount == amount
    assert type(transfer.amount) is int


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"removed": True}, id="removed-by-reorg"),
        pytest.param(
            {"topics": [TRANSFER_TOPIC, topic(SENDER), topic(RECIPIENT), word(7)], "data": "0x"},
            id="erc721-four-topics",
        ),
        pytest.param({"topics": [TRANSFER_TOPIC, topic(SENDER)]}, id="two-topics"),
        pytest.param(
            {"topics": ["0x" + "00" * 32, topic(SENDER), topic(RECIPIENT)]}, id="other-event"
        ),
        pytest.param({"topics": []}, id="anonymous"),
        pytest.param({"data": "0x"}, id="no-data"),
        pytest.param({"data": word(1) + "00"}, id="data-too-long"),
        pytest.param({"data": "0x" + "00" * 31}, id="data-too-short"),
        pytest.param({"data": "0xzz" + "00" * 31}, id="data-not-hex"),
        pytest.param(
            {"topics": [TRANSFER_TOPIC, "0x" + "ff" * 32, topic(RECIPIENT)]}, id="dirty-topic"
        ),
        pytest.param({"blockNumber": None}, id="pending"),
    ],
)
def test_non_erc20_transfer_logs_decode_to_none(overrides: dict[str, Any]) -> None:
    assert decode_transfer_log(transfer_log(**overrides)) is None


def test_transfer_topic_matches_in_any_hex_case() -> None:
    log = transfer_log(
        topics=[TRANSFER_TOPIC.upper().replace("0X", "0x"), topic(SENDER), topic(RECIPIENT)]
    )
    assert decode_transfer_log(log) is not None


def test_full_block_decodes_transactions_with_contract_creation() -> None:
    # given a block with a payment and a contract creation
    raw = {
        "number": "0x2a",
        "hash": BLOCK_HASH.upper().replace("0X", "0x"),
        "parentHash": "0x" + "0a" * 32,
        "timestamp": "0x65000000",
        "transactions": [
            {
                "hash": TX_HASH,
                "from": SENDER,
                "to": RECIPIENT,
                "value": hex(2**200),
                "transactionIndex": "0x0",
            },
            {
                "hash": "0x" + "0f" * 32,
                "from": SENDER,
                "to": None,
                "value": "0x0",
                "transactionIndex": "0x1",
            },
        ],
    }
    # when decoded
    block = decode_block(raw)
    # then
    assert isinstance(block, Block)
    assert (block.number, block.hash, block.timestamp) == (42, BLOCK_HASH, 0x65000000)
    assert block.transactions is not None
    assert block.transactions[0].value == 2**200
    assert block.transactions[0].to_address == RECIPIENT
    assert block.transactions[1].to_address is None
    assert block.transactions[1].index == 1


def test_block_without_bodies_has_no_transactions() -> None:
    raw = {
        "number": "0x1",
        "hash": BLOCK_HASH,
        "parentHash": BLOCK_HASH,
        "timestamp": "0x1",
        "transactions": [TX_HASH],
    }
    assert decode_block(raw).transactions is None


def frame(
    to: str,
    value: int = 0,
    kind: str = "CALL",
    calls: list[Any] | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {"type": kind, "from": SENDER, "to": to, "value": hex(value)}
    if calls:
        result["calls"] = calls
    if error:
        result["error"] = error
    return result


def test_internal_transfers_are_value_calls_below_the_top_level() -> None:
    # given a tx that calls a forwarder (value at top level) which sends value on, twice
    a, b, c = "0x" + "a1" * 20, "0x" + "b2" * 20, "0x" + "c3" * 20
    trace = frame(a, 5, calls=[frame(b, 2, calls=[frame(c, 1)]), frame(c, 3)])
    # when decoded
    transfers = decode_internal_transfers(9, [{"txHash": TX_HASH, "result": trace}])
    # then the top-level value is not counted and positions follow pre-order
    assert [(t.to_address, t.value, t.position) for t in transfers] == [
        (b, 2, 1),
        (c, 1, 2),
        (c, 3, 3),
    ]
    assert transfers[0] == InternalTransfer(9, TX_HASH, 1, SENDER, b, 2, "CALL")


def test_internal_transfers_skip_reverted_subtrees_but_keep_positions() -> None:
    a, b, c = "0x" + "a1" * 20, "0x" + "b2" * 20, "0x" + "c3" * 20
    trace = frame(
        a, 0, calls=[frame(b, 2, error="execution reverted", calls=[frame(c, 1)]), frame(c, 3)]
    )
    transfers = decode_internal_transfers(9, [{"txHash": TX_HASH, "result": trace}])
    assert [(t.to_address, t.value, t.position) for t in transfers] == [(c, 3, 3)]


def test_internal_transfers_ignore_failed_transactions_entirely() -> None:
    trace = frame("0x" + "a1" * 20, 1, error="out of gas", calls=[frame("0x" + "b2" * 20, 1)])
    assert decode_internal_transfers(9, [{"txHash": TX_HASH, "result": trace}]) == []


@pytest.mark.parametrize("kind", ["DELEGATECALL", "CALLCODE", "STATICCALL"])
def test_calls_that_move_no_coin_are_not_internal_transfers(kind: str) -> None:
    trace = frame("0x" + "a1" * 20, 1, calls=[frame("0x" + "b2" * 20, 1, kind=kind)])
    assert decode_internal_transfers(9, [{"txHash": TX_HASH, "result": trace}]) == []


def test_selfdestruct_and_create_with_value_are_internal_transfers() -> None:
    b, c = "0x" + "b2" * 20, "0x" + "c3" * 20
    trace = frame(
        "0x" + "a1" * 20, 0, calls=[frame(b, 4, kind="CREATE2"), frame(c, 6, kind="SELFDESTRUCT")]
    )
    transfers = decode_internal_transfers(9, [{"txHash": TX_HASH, "result": trace}])
    assert [(t.call_type, t.value) for t in transfers] == [("CREATE2", 4), ("SELFDESTRUCT", 6)]

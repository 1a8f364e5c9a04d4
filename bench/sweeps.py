"""Gas per swept deposit address: forwarder batches of 1, 10 and 100 against the xpub mode.

Run: .venv/bin/python bench/sweeps.py

On a fresh anvil (gasUsed is exact and deterministic), the factory is deployed through the
deterministic-deployment proxy; deposit addresses are funded with a 6-decimal TestToken and/or
native coin, then swept by one `ForwarderFactory.sweep` per batch (deployment of each forwarder
included: it is created, sweeps and self-destructs in the same transaction). The xpub mode's
cost per address is measured the same way: a 21,000-gas native transfer funding the address
with gas, then the address's own token transfer to the treasury.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexer import forwarder
from tests.support.anvil import Anvil, calldata
from tests.support.forwarders import checksum, deploy_factory, sweep

BATCHES = (1, 10, 100)


def main() -> None:
    anvil = Anvil(workdir=Path(tempfile.mkdtemp(prefix="bench-sweeps-"))).start()
    try:
        factory = deploy_factory(anvil)
        token = anvil.deploy_token("USDT", 6)
        treasury = checksum(anvil.accounts[5])
        secret = forwarder.new_salt_secret()
        index = 0
        print("| batch | ERC20 gas/address | native gas/address | ERC20 + native gas/address |")
        print("|---|---|---|---|")
        for size in BATCHES:
            row = []
            for kind in ("erc20", "native", "both"):
                salts = [forwarder.deposit_salt(secret, index + i) for i in range(size)]
                index += size
                for salt in salts:
                    address = forwarder.deposit_address(factory, treasury, salt)
                    if kind in ("erc20", "both"):
                        anvil.token_mint(token, address, 25_000_000)
                    if kind in ("native", "both"):
                        anvil.send_eth(anvil.accounts[1], address, 10**16)
                tokens = [] if kind == "native" else [token]
                receipt = sweep(anvil, factory, treasury, salts, tokens)
                row.append(int(receipt["gasUsed"], 16) // size)
            print(f"| {size} | {row[0]:,} | {row[1]:,} | {row[2]:,} |")
        # the xpub mode: fund the address with gas, then its own token transfer
        payer = anvil.accounts[6]
        anvil.token_mint(token, payer, 25_000_000)
        funding = anvil.send_eth(anvil.accounts[1], anvil.accounts[7], 10**16)
        data = calldata("transfer(address,uint256)", treasury, 25_000_000)
        transfer = anvil.send_tx(payer, token, data=data)
        fund_gas, transfer_gas = int(funding["gasUsed"], 16), int(transfer["gasUsed"], 16)
        print(
            f"\nxpub mode per address: gas funding {fund_gas:,} + token transfer "
            f"{transfer_gas:,} = {fund_gas + transfer_gas:,} (native only: {fund_gas:,})"
        )
    finally:
        anvil.stop()


if __name__ == "__main__":
    main()

"""[sweep]: the gas key, its threshold and the unswept-value alert; one line per mistake."""

from pathlib import Path

import pytest

from indexer.config import ConfigError, SweepSettings, load_settings
from tests.unit.test_config import GOOD, write


def test_defaults_send_nothing_and_alert_on_nothing(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, GOOD), env={}).sweep == SweepSettings()


def test_a_full_sweep_table_is_read_exactly(tmp_path: Path) -> None:
    text = GOOD + (
        '[sweep]\ngas_key_file = "/etc/chainpay/gas.key"\ngas_multiple = 20\ninterval = 60\n'
        'replace_after = 900\nalert_above = { USDT = "10000.5", ETH = "2" }\n'
    )
    sweep = load_settings(write(tmp_path, text), env={}).sweep
    assert sweep == SweepSettings(
        gas_key_file=Path("/etc/chainpay/gas.key"),
        gas_multiple=20,
        interval=60,
        replace_after=900,
        alert_above={"USDT": "10000.5", "ETH": "2"},
    )


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        pytest.param('[sweep]\ngas_key_file = " "\n', "sweep.gas_key_file", "must not be empty",
                     id="empty-key-file"),
        pytest.param("[sweep]\ngas_multiple = 0\n", "sweep.gas_multiple", "greater than zero",
                     id="zero-multiple"),
        pytest.param("[sweep]\ninterval = -5\n", "sweep.interval", "greater than zero",
                     id="negative-interval"),
        pytest.param("[sweep]\nreplace_after = 0\n", "sweep.replace_after", "greater than zero",
                     id="zero-replace-after"),
        pytest.param('[sweep]\nreplace_after = "10m"\n', "sweep.replace_after", "integer",
                     id="replace-after-not-a-number"),
        pytest.param('[sweep]\nalert_above = { DOGE = "1" }\n', "sweep.alert_above.DOGE",
                     "no configured network", id="unknown-asset"),
        pytest.param("[sweep]\nalert_above = { USDT = 1000 }\n", "sweep.alert_above.USDT",
                     "decimal string", id="number-not-string"),
        pytest.param('[sweep]\nalert_above = { USDT = "0.0000001" }\n', "sweep.alert_above.USDT",
                     "decimal places", id="too-precise"),
        pytest.param('[sweep]\ngas_key = "0xabc"\n', "sweep.gas_key", "unknown key", id="typo"),
    ],
)  # fmt: skip
def test_sweep_mistakes_name_the_file_and_key(
    tmp_path: Path, extra: str, key: str, words: str
) -> None:
    path = write(tmp_path, GOOD + extra)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert str(caught.value).startswith(f"{path}: {key}: ")
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)

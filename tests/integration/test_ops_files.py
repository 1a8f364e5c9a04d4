"""The operator files hold together: compose, Dockerfile, Prometheus rules, Grafana dashboards.

Validated with the real tools (docker-compose v1 `config`, promtool) and cross-checked against
the metric catalogue in indexer/metrics.py and the runbook anchors in docs/operations.md.
No Docker engine and no network are needed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PROMETHEUS_CONFIG = ROOT / "ops/prometheus/prometheus.yml"
RULES = ROOT / "ops/prometheus/rules/chainpay.rules.yml"
RULE_TESTS = ROOT / "ops/prometheus/tests/chainpay.rules.test.yml"
DASHBOARDS = ROOT / "ops/grafana/dashboards"
DATASOURCES = ROOT / "ops/grafana/provisioning/datasources/prometheus.yml"
DASHBOARD_PROVIDER = ROOT / "ops/grafana/provisioning/dashboards/chainpay.yml"
OPERATIONS_DOC = ROOT / "docs/operations.md"
COMPOSE_CONFIG = ROOT / "ops/chainpay.compose.toml"
LAPTOP_CONFIG = ROOT / "ops/chainpay.laptop.toml"

PROFILES = {  # service -> the profiles that start it
    "geth": {"nodes", "ethereum"},
    "lighthouse": {"nodes", "ethereum"},
    "bsc": {"nodes", "bsc"},
    "chainpay": {"nodes", "ethereum", "bsc"},
}
LAPTOP_SERVICES = {"anvil-eth", "anvil-bsc", "chainpay-laptop"}
ALWAYS_SERVICES = {"prometheus", "grafana"}
EXPECTED_ALERTS = {
    "ChainpayGasKeyLow",
    "ChainpaySweeperFailing",
    "ChainpaySweepPending",
    "ChainpayDown",
    "ChainpayNetworkLagging",
    "ChainpayNodeWebsocketDown",
    "ChainpayNoNewBlocks",
    "ChainpayDeepReorg",
    "ChainpayWebhookFailureRate",
    "ChainpayOldestUndeliveredEvent",
    "ChainpaySlowCommits",
    "ChainpayPaymentNotCredited",
    "ChainpayStoreNotWritable",
    "ChainpayReconciledCredit",
    "ChainpayNodeStateMissing",
    "ChainpayPriceFeedStale",
    "ChainpayNetworkWithoutLeader",
    "ChainpayUnsweptValueHigh",
}
LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0"}
URL = re.compile(r"\b(?:https?|wss?)://[^\s\"'`<>)\]},]+")
METRIC = re.compile(r"\b(?:chainpay_[a-z0-9_]+|process_[a-z0-9_]+|up)\b")


# --- helpers --------------------------------------------------------------------------------


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run .ci/setup")
    return path


def load_yaml(path: Path) -> Any:
    try:
        import yaml
    except ImportError:
        pytest.fail("PyYAML is not installed: run .ci/setup")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


def services() -> dict[str, Any]:
    return compose()["services"]


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS.glob("*.json"))
    }


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in board["panels"] if panel["type"] != "row"]


def panel_queries() -> list[tuple[str, str, str]]:
    return [
        (name, panel["title"], target["expr"])
        for name, board in dashboards().items()
        for panel in panels(board)
        for target in panel["targets"]
    ]


def exported_sample_names() -> set[str]:
    """Every sample name the catalogue can expose, with the suffixes Prometheus sees."""
    from prometheus_client.metrics import MetricWrapperBase

    import indexer.metrics as catalogue

    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for value in vars(catalogue).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


def metric_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return set(METRIC.findall(without_strings))


def markdown_anchors(path: Path) -> set[str]:
    """GitHub's heading slugs: lowercase, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def strings_in(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in (*strings_in(key), *strings_in(value))]
    if isinstance(node, list):
        return [s for item in node for s in strings_in(item)]
    return []


# --- docker-compose ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "profile",
    [None, "nodes", "ethereum", "bsc", "laptop", "base", "replicas"],
    ids=["no-profile", "nodes", "ethereum", "bsc", "laptop", "base", "replicas"],
)
def test_compose_file_passes_docker_compose_validation(profile: str | None) -> None:
    args = [tool("docker-compose"), "-f", str(COMPOSE)]
    if profile:
        args += ["--profile", profile]
    result = run(*args, "config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_compose_profiles_separate_real_nodes_from_dev_chains() -> None:
    profiles = {name: set(svc.get("profiles", [])) for name, svc in services().items()}

    assert {name: p for name, p in profiles.items() if p & {"nodes"}} == PROFILES
    assert {name for name, p in profiles.items() if p == {"laptop"}} == LAPTOP_SERVICES
    assert {name for name, p in profiles.items() if not p} == ALWAYS_SERVICES


def test_compose_replicas_share_one_postgres_behind_one_port() -> None:
    svc = services()
    replicas = [name for name, s in svc.items() if s.get("profiles") == ["replicas"]]
    assert set(replicas) == {"postgres", "chainpay-a", "chainpay-b", "chainpay-lb"}
    for name in ("chainpay-a", "chainpay-b"):
        env = svc[name]["environment"]
        assert (
            env["CHAINPAY_DATABASE"].startswith("postgresql://")
            and "@postgres:" in env["CHAINPAY_DATABASE"]
        )
        assert "--migrate" in svc[name]["command"]  # under the advisory lock: once
        assert "ports" not in svc[name]  # reached through the load balancer only
    upstream = (ROOT / "ops/nginx/replicas.conf").read_text()
    assert "chainpay-a:8080" in upstream and "chainpay-b:8080" in upstream
    assert svc["chainpay-lb"]["ports"] == ["127.0.0.1:8080:8080"]


def test_compose_gateways_depend_on_the_chains_of_their_profile() -> None:
    svc = services()

    # One gateway serves the nodes, ethereum and bsc profiles: a dependency on geth or bsc
    # would keep it from starting (or start the other chain's node) in a one-chain profile.
    assert "depends_on" not in svc["chainpay"]
    assert set(svc["chainpay-laptop"]["depends_on"]) == {"anvil-eth", "anvil-bsc"}
    assert set(svc["lighthouse"]["depends_on"]) == {"geth"}


def test_compose_laptop_gateway_answers_as_chainpay_for_prometheus() -> None:
    aliases = services()["chainpay-laptop"]["networks"]["default"]["aliases"]

    assert "chainpay" in aliases
    assert '"chainpay:8080"' in PROMETHEUS_CONFIG.read_text(encoding="utf-8")


def test_compose_services_with_a_check_declare_healthchecks() -> None:
    missing = [name for name, svc in services().items() if "test" not in svc.get("healthcheck", {})]

    assert missing == []


def test_compose_chainpay_healthcheck_probes_healthz() -> None:
    for name in ("chainpay", "chainpay-laptop"):
        assert "/healthz" in " ".join(services()[name]["healthcheck"]["test"])


def test_compose_state_lives_on_declared_named_volumes() -> None:
    spec = compose()
    declared = set(spec["volumes"])
    expected_mounts = {
        "geth": "/data",
        "lighthouse": "/data",
        "bsc": "/data",  # the bnb-chain/bsc image's DATA_DIR, owned by its uid 1000
        "chainpay": "/data",
        "chainpay-laptop": "/data",
        "prometheus": "/prometheus",
        "grafana": "/var/lib/grafana",
    }
    for name, target in expected_mounts.items():
        mounts = dict(v.split(":")[:2][::-1] for v in spec["services"][name]["volumes"])
        assert mounts.get(target) in declared, f"{name}:{target} is not on a named volume"


def test_compose_geth_and_lighthouse_share_the_jwt_secret_volume() -> None:
    svc = services()
    geth_command = " ".join(svc["geth"]["command"])
    lighthouse_command = " ".join(svc["lighthouse"]["command"])

    assert "ethereum-jwt:/jwt" in svc["geth"]["volumes"]
    assert "ethereum-jwt:/jwt:ro" in svc["lighthouse"]["volumes"]
    assert "--authrpc.jwtsecret=/jwt/jwt.hex" in geth_command
    assert "--execution-jwt=/jwt/jwt.hex" in lighthouse_command
    assert "--execution-endpoint=http://geth:8551" in lighthouse_command


@pytest.mark.parametrize("service", ["geth", "bsc", "op-geth"])
def test_compose_nodes_serve_websocket_with_the_apis_chainpay_needs(service: str) -> None:
    command = " ".join(services()[service]["command"])

    assert re.search(r"--ws(\s|$)", command)
    assert "--ws.api=eth,net,web3,debug" in command
    assert "--http.api=eth,net,web3,debug" in command
    assert "--ws.port=8546" in command


def test_compose_base_profile_is_a_rollup_node_pair_following_the_stacks_l1() -> None:
    svc = services()
    op_node = " ".join(svc["op-node"]["command"])

    assert set(svc["op-geth"]["profiles"]) == set(svc["op-node"]["profiles"]) == {"base"}
    assert "--op-network=base-mainnet" in svc["op-geth"]["command"]
    assert "--network=base-mainnet" in op_node
    assert "--l2=http://op-geth:8551" in op_node and "--l2.jwt-secret=/jwt/jwt.hex" in op_node
    assert "--l1=${BASE_L1_RPC:-http://geth:8545}" in op_node
    assert "--l1.beacon=${BASE_L1_BEACON:-http://lighthouse:5052}" in op_node
    assert "base-jwt:/jwt" in svc["op-geth"]["volumes"]
    assert "base-jwt:/jwt:ro" in svc["op-node"]["volumes"]


def test_compose_publishes_node_rpc_and_dashboards_only_on_loopback() -> None:
    exposed = {}
    for name, svc in services().items():
        for port in svc.get("ports", []):
            parts = str(port).split(":")
            exposed[(name, parts[-1])] = parts[0] if len(parts) == 3 else "0.0.0.0"
    private = {"8545", "8546", "8551", "5052", "8080", "9090", "3000"}
    leaks = [key for key, host in exposed.items() if key[1] in private and host != "127.0.0.1"]

    assert leaks == []
    assert ("chainpay", "8080") in exposed
    assert ("prometheus", "9090") in exposed
    assert ("grafana", "3000") in exposed


def test_compose_gateways_mount_the_config_of_their_profile() -> None:
    svc = services()

    assert (
        "./ops/chainpay.compose.toml:/etc/chainpay/chainpay.toml:ro" in svc["chainpay"]["volumes"]
    )
    assert (
        "./ops/chainpay.laptop.toml:/etc/chainpay/chainpay.toml:ro"
        in svc["chainpay-laptop"]["volumes"]
    )
    for name in ("chainpay", "chainpay-laptop"):
        assert svc[name]["build"] == "."
        assert svc[name]["environment"]["CHAINPAY_CONFIG"] == "/etc/chainpay/chainpay.toml"


def test_compose_monitoring_mounts_the_repository_configuration() -> None:
    svc = services()

    assert "./ops/prometheus:/etc/prometheus:ro" in svc["prometheus"]["volumes"]
    assert "./ops/grafana/provisioning:/etc/grafana/provisioning:ro" in svc["grafana"]["volumes"]
    provider = load_yaml(DASHBOARD_PROVIDER)["providers"][0]
    mount = f"./ops/grafana/dashboards:{provider['options']['path']}:ro"
    assert mount in svc["grafana"]["volumes"]


# --- chainpay configs and third-party URLs ----------------------------------------------------


@pytest.mark.parametrize(
    ("config", "nodes"),
    [(COMPOSE_CONFIG, {"geth", "bsc"}), (LAPTOP_CONFIG, {"anvil-eth", "anvil-bsc"})],
    ids=["compose", "laptop"],
)
def test_chainpay_config_reads_only_from_nodes_in_the_stack(config: Path, nodes: set[str]) -> None:
    from indexer.config import load_settings

    settings = load_settings(config, env={})
    hosts = {urlsplit(net.rpc_url).hostname for net in settings.networks.values()}
    schemes = {urlsplit(net.rpc_url).scheme for net in settings.networks.values()}

    assert set(settings.networks) == {"ethereum", "bsc"}
    assert hosts == nodes
    assert schemes == {"ws"}
    assert str(settings.database) == "/data/chainpay.duckdb"


def test_compose_config_watches_mainnet_usdt_with_the_right_decimals() -> None:
    from indexer.config import load_settings

    networks = load_settings(COMPOSE_CONFIG, env={}).networks
    eth, bsc = networks["ethereum"], networks["bsc"]

    assert (eth.chain_id, eth.confirmations, eth.native.symbol) == (1, 12, "ETH")
    assert (bsc.chain_id, bsc.confirmations, bsc.native.symbol) == (56, 15, "BNB")
    assert eth.asset("USDT").decimals == 6
    assert bsc.asset("USDT").decimals == 18
    assert not load_settings(COMPOSE_CONFIG, env={}).webhooks.allow_private_targets


def test_stack_files_name_no_host_outside_the_stack() -> None:
    allowed = LOCAL_HOSTS | set(services())
    texts = strings_in(compose()) + strings_in(load_yaml(PROMETHEUS_CONFIG))
    texts += strings_in(load_yaml(DATASOURCES))
    for config in (COMPOSE_CONFIG, LAPTOP_CONFIG):
        texts += strings_in(tomllib.loads(config.read_text(encoding="utf-8")))
    hosts = {urlsplit(url).hostname for text in texts for url in URL.findall(text)}

    assert hosts - allowed == set()


# --- Dockerfile -----------------------------------------------------------------------------


def test_dockerfile_installs_the_repository_with_pip_install_dot() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")

    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"pip install --no-cache-dir \.(\s|$)", text)


def test_dockerfile_runs_the_gateway_as_a_non_root_user() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    users = re.findall(r"^USER\s+(\S+)", text, re.M)

    assert users and users[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["chainpay"]' in text
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]' in text
    assert re.search(r"^EXPOSE 8080$", text, re.M)
    assert re.search(r"^VOLUME /data$", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*urllib.*/healthz", text, re.M)


def test_docker_build_context_carries_the_package_sources() -> None:
    patterns = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()

    for needed in ("!pyproject.toml", "!README.md", "!indexer", "!api"):
        assert needed in patterns


# --- Prometheus -----------------------------------------------------------------------------


@pytest.mark.prometheus
def test_prometheus_config_passes_promtool() -> None:
    result = run(tool("promtool"), "check", "config", str(PROMETHEUS_CONFIG))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


@pytest.mark.prometheus
def test_alert_rules_pass_promtool() -> None:
    result = run(tool("promtool"), "check", "rules", str(RULES))

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.prometheus
def test_alert_rules_fire_and_stay_quiet_as_their_unit_tests_say() -> None:
    result = run(tool("promtool"), "test", "rules", str(RULE_TESTS))

    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rule_unit_tests_cover_every_alert() -> None:
    tested = {
        case["alertname"]
        for group in load_yaml(RULE_TESTS)["tests"]
        for case in group["alert_rule_test"]
        if case.get("exp_alerts")
    }

    assert tested == EXPECTED_ALERTS


def test_alert_rules_define_every_expected_alert() -> None:
    assert {rule["alert"] for rule in rules() if "alert" in rule} == EXPECTED_ALERTS


def test_every_alert_has_a_duration_severity_and_operator_annotations() -> None:
    for rule in rules():
        assert "for" in rule, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]


def test_every_runbook_annotation_points_at_a_section_of_the_operations_guide() -> None:
    anchors = markdown_anchors(OPERATIONS_DOC)
    for rule in rules():
        path, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert path == "docs/operations.md", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no heading for #{anchor}"


@pytest.mark.prometheus
def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    recording = [
        {"record": f"check:panel_{i}", "expr": expr.replace("$network", ".*")}
        for i, (_, _, expr) in enumerate(panel_queries())
    ]
    rule_file = tmp_path / "panels.rules.json"  # JSON is YAML, and needs no YAML writer
    rule_file.write_text(json.dumps({"groups": [{"name": "panels", "rules": recording}]}))

    result = run(tool("promtool"), "check", "rules", str(rule_file))

    assert result.returncode == 0, result.stdout + result.stderr


# --- metric names ---------------------------------------------------------------------------


def test_alert_rules_use_only_exported_metrics() -> None:
    allowed = exported_sample_names()
    used = {name for rule in rules() for name in metric_names(rule["expr"])}

    assert used, "no metric found in the rules"
    assert {n for n in used if n != "up" and n not in allowed} == set()


def test_dashboards_use_only_exported_metrics() -> None:
    allowed = exported_sample_names()
    unknown = {
        (board, title, name)
        for board, title, expr in panel_queries()
        for name in metric_names(expr)
        if name not in allowed and name != "up" and not name.startswith("process_")
    }

    assert unknown == set()


def test_metric_name_parsing_sees_histogram_and_counter_suffixes() -> None:
    allowed = exported_sample_names()

    assert {
        "chainpay_reorg_depth_blocks_bucket",
        "chainpay_reorg_depth_blocks_count",
        "chainpay_invoice_reorg_flags_total",
        "chainpay_lag_blocks",
        "chainpay_build_info",
    } <= allowed
    assert "chainpay_lag_blocks_total" not in allowed
    assert metric_names('sum(rate(chainpay_x_total{outcome="up"}[5m])) and up') == {
        "chainpay_x_total",
        "up",
    }


# --- Grafana --------------------------------------------------------------------------------


def test_dashboards_exist_with_distinct_stable_uids() -> None:
    boards = dashboards()

    assert set(boards) == {"overview.json", "webhooks.json", "api.json"}
    assert {board["uid"] for board in boards.values()} == {
        "chainpay-overview",
        "chainpay-webhooks",
        "chainpay-api",
    }


def test_every_panel_queries_the_provisioned_datasource_by_uid() -> None:
    datasource = load_yaml(DATASOURCES)["datasources"][0]
    for board in dashboards().values():
        for panel in panels(board):
            refs = [panel["datasource"], *(t["datasource"] for t in panel["targets"])]
            assert all(ref == {"type": "prometheus", "uid": datasource["uid"]} for ref in refs), (
                panel["title"]
            )
            assert panel["targets"], panel["title"]


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    for name, board in dashboards().items():
        ids = [panel["id"] for panel in board["panels"]]
        cells = set()
        for panel in board["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, (name, panel["title"])
            area = {
                (x, y)
                for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])
            }
            assert not cells & area, (name, panel["title"])
            cells |= area
        assert len(ids) == len(set(ids)), name


def test_overview_filters_by_a_network_variable() -> None:
    overview = dashboards()["overview.json"]
    variables = {var["name"]: var for var in overview["templating"]["list"]}
    per_network = [
        expr for board, _, expr in panel_queries() if board == "overview.json" and "network" in expr
    ]

    assert variables["network"]["includeAll"] is True
    assert "label_values(chainpay_node_head_block, network)" in variables["network"]["definition"]
    assert per_network
    assert all('network=~"$network"' in expr for expr in per_network)


def test_overview_shows_every_chain_tail_signal() -> None:
    used = {
        name
        for board, _, expr in panel_queries()
        if board == "overview.json"
        for name in metric_names(expr)
    }

    assert {
        "chainpay_node_head_block",
        "chainpay_processed_block",
        "chainpay_lag_blocks",
        "chainpay_lag_seconds",
        "chainpay_blocks_processed_total",
        "chainpay_transfers_processed_total",
        "chainpay_payments_matched_total",
        "chainpay_reorgs_total",
        "chainpay_rpc_errors_total",
        "chainpay_websocket_connected",
        "chainpay_issued_addresses",
        "chainpay_bloom_fill_ratio",
        "chainpay_invoice_transitions_total",
    } <= used


# --- the compose file's gateway commands against the real CLI (issue 10) ----------------------

GATEWAYS = ["chainpay", "chainpay-laptop"]


def container_argv(name: str) -> list[str]:
    """What the container runs: compose's entrypoint/command, else the Dockerfile's."""
    svc = services()[name]
    text = DOCKERFILE.read_text(encoding="utf-8")

    def instruction(word: str) -> list[str]:
        match = re.search(rf"^{word}\s+(\[.*\])\s*$", text, re.M)
        assert match, f"the Dockerfile has no exec-form {word}"
        return list(json.loads(match.group(1)))

    entrypoint = svc.get("entrypoint", instruction("ENTRYPOINT"))
    command = svc.get("command", instruction("CMD") if "entrypoint" not in svc else [])
    return [str(a) for a in [*entrypoint, *command]]


def container_environment(name: str) -> dict[str, str]:
    env = services()[name].get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def host_files(name: str, tmp_path: Path) -> dict[str, str]:
    """Container path -> a host copy, for each repository file the service mounts.

    A chainpay config keeps every key but the database, moved to `tmp_path` (its /data is
    the container's volume).
    """
    mapped = {}
    for volume in services()[name]["volumes"]:
        source, target = volume.split(":")[:2]
        if not source.startswith("./") or not (ROOT / source).is_file():
            continue
        copy = tmp_path / Path(source).name
        text = (ROOT / source).read_text(encoding="utf-8")
        db = (tmp_path / "chainpay.duckdb").as_posix()
        copy.write_text(re.sub(r'(?m)^database = ".*"$', f'database = "{db}"', text))
        mapped[target] = str(copy)
    return mapped


@pytest.mark.parametrize("name", GATEWAYS)
def test_compose_gateway_command_is_accepted_by_the_cli_parser(name: str) -> None:
    from api.cli import build_parser

    argv = container_argv(name)

    assert argv[0] == "chainpay"  # the console script pyproject.toml installs
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit as exc:  # argparse refuses with exit 2 and a usage line on stderr
        pytest.fail(f"chainpay refuses the {name} command {argv[1:]} (exit {exc.code})")
    assert args.command == "serve"


@pytest.mark.parametrize("name", GATEWAYS)
def test_compose_gateway_command_starts_and_stops_the_real_gateway(
    name: str, tmp_path: Path
) -> None:
    import signal
    import sys

    from tests.support.process import free_port, wait_http

    files = host_files(name, tmp_path)
    argv = [files.get(a, a) for a in container_argv(name)]
    env = {k: files.get(v, v) for k, v in container_environment(name).items()}
    port = str(free_port())  # the published 8080 may be taken on this machine
    argv[argv.index("--port") + 1] = port
    chainpay = str(Path(sys.executable).parent / argv[0])
    log = tmp_path / "gateway.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [chainpay, *argv[1:]],
            env={**os.environ, **env},
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process)  # type: ignore[arg-type]
    except Exception:
        process.kill()
        process.wait()
        pytest.fail(f"{name}: {argv[1:]} did not serve:\n{log.read_text()}")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, log.read_text()
    assert (tmp_path / "chainpay.duckdb").exists()  # it used the mounted config's settings


def test_compose_bsc_writes_to_the_data_dir_its_image_owns() -> None:
    bsc = services()["bsc"]
    script = " ".join(bsc["command"])

    assert str(bsc["user"]) == "1000:1000"  # the image's bsc user
    assert "bsc-data:/data" in bsc["volumes"]
    assert "--datadir=/data " in script and "/data/geth/chaindata" in script
    assert "/bsc/node" not in script


def test_compose_lighthouse_publishes_its_peer_ports_and_quic() -> None:
    lighthouse = services()["lighthouse"]
    script = " ".join(lighthouse["command"])

    assert "--port=9000" in script and "--quic-port=9001" in script
    assert {"9000:9000/tcp", "9000:9000/udp", "9001:9001/udp"} <= set(lighthouse["ports"])

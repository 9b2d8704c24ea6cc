"""The arrows between packages (docs/ARCHITECTURE.md), checked by parsing every import.

consensus/, storage/, services/ and p2p/ never import each other; consensus is pure (no
asyncio, sockets, clocks, global randomness, LevelDB or Prometheus); protocol/ is a leaf;
bench/ reaches the node only through its client and CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRST_PARTY = {"protocol", "consensus", "storage", "services", "p2p", "node", "bench"}

# package -> (allowed first-party packages, forbidden third-party/stdlib top-level modules)
RULES: dict[str, tuple[set[str], set[str]]] = {
    "protocol": (
        set(),
        {
            "asyncio",
            "socket",
            "time",
            "random",
            "plyvel",
            "prometheus_client",
            "aiohttp",
            "uvloop",
            "msgspec",
        },
    ),
    "consensus": (
        {"protocol"},
        {
            "asyncio",
            "socket",
            "time",
            "plyvel",
            "prometheus_client",
            "aiohttp",
            "uvloop",
            "threading",
            "subprocess",
        },
    ),
    "storage": ({"protocol"}, {"asyncio", "socket", "prometheus_client", "aiohttp", "nacl"}),
    "services": (
        {"protocol"},
        {
            "asyncio",
            "socket",
            "time",
            "random",
            "plyvel",
            "prometheus_client",
            "aiohttp",
            "uvloop",
            "os",
        },
    ),
    "p2p": (set(), {"plyvel", "prometheus_client", "aiohttp"}),
    "node": ({"protocol", "consensus", "storage", "services", "p2p"}, set()),
}


def _python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
    return found


def _module_level_random_calls(path: Path) -> list[int]:
    """`random.random()`-style calls on the module (the global RNG); random.Random is fine."""
    tree = ast.parse(path.read_text(), filename=str(path))
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "random"
            and node.attr != "Random"
        ):
            lines.append(node.lineno)
    return lines


# The one sanctioned exception: the `seoulchain` console script dispatches `seoulchain bench`
# to bench/ (imported only when that command runs), so one command covers everything.
CLI_DISPATCH_EXCEPTIONS = {("node/cli.py", "bench.cli")}


@pytest.mark.parametrize("package", sorted(RULES))
def test_package_imports_follow_the_arrows(package: str) -> None:
    allowed_first_party, forbidden = RULES[package]
    violations = []
    for path in _python_files(package):
        for module, line in _imports(path):
            top = module.split(".")[0]
            if (str(path.relative_to(ROOT)), module) in CLI_DISPATCH_EXCEPTIONS:
                continue
            where = f"{path.relative_to(ROOT)}:{line} imports {module}"
            if top in FIRST_PARTY and top != package and top not in allowed_first_party:
                violations.append(where)
            if top in forbidden:
                violations.append(where)
    assert not violations, "imports against docs/ARCHITECTURE.md:\n" + "\n".join(violations)


def test_consensus_never_uses_the_global_random_generator() -> None:
    violations = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in _python_files("consensus")
        for line in _module_level_random_calls(path)
    ]
    assert not violations, "use an injected random.Random:\n" + "\n".join(violations)


def test_bench_reaches_the_node_only_through_client_and_cli() -> None:
    """bench/ drives real nodes through their public interfaces: the RPC client and the
    CLI. It may also use protocol/ and the services' pure body encoders to build txs, as
    any client in another language would from docs/PROTOCOL.md and docs/SERVICES.md."""
    violations = []
    for path in _python_files("bench"):
        for module, line in _imports(path):
            top = module.split(".")[0]
            if top in FIRST_PARTY - {"bench", "protocol", "services"} and module not in {
                "node.client",
                "node.cli",
            }:
                violations.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not violations, "\n".join(violations)


def test_the_rules_cover_every_first_party_package() -> None:
    assert set(RULES) | {"bench"} == FIRST_PARTY
    for package in FIRST_PARTY:
        assert (ROOT / package / "__init__.py").exists(), package

"""The PBFT mutation check (issue 3, "Must show"): does the test suite catch broken engines?

    .venv/bin/python scripts/mutation_check.py [--only NAME ...] [--list] [--every-failure]
                                               [--tests PATH ...] [--markers EXPR]
                                               [--sim-seeds 0-9]

Each mutant is one precise source patch (file, exact original snippet, replacement) that
breaks a rule PBFT's safety or liveness rests on. The working tree is copied once to a
temporary directory (without .venv, .git and caches); for each mutant the patch is applied
to the copy, the PBFT unit tests and the fast simulation tier run there with `-x`, and the
patch is undone. /work/main's sources are never touched. A mutant is *killed* when pytest
reports a failing test; the first failing test is read from pytest's JUnit XML.

Before any mutant, the unmutated copy must pass the same run (the baseline), otherwise a
"kill" would mean nothing. A patch whose original snippet is no longer in the file exactly
once is *stale*: the engine changed and the mutant must be rewritten, so it counts as a
failure of the check, not as a kill.

Exit status: 0 when the baseline passes and every mutant is killed; 1 otherwise. Not part
of CI (it runs the suite once per mutant, 2 to 3 minutes here); results and the test that
caught each mutant are recorded in docs/MUTATION-CHECK.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = REPO / ".venv" / "bin" / "python"
# Fast unit tests first, so most mutants die within seconds; then the simulator's fast tier.
TEST_PATHS = ("tests/consensus/pbft", "tests/consensus/sim/test_pbft_sim.py")
MARKERS = "not slow and not sim_long and not soak"
COPY_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "*.egg-info"
)
RUN_TIMEOUT_SECONDS = 600  # one whole pytest run; a hung mutant is reported, not waited on
TEST_TIMEOUT_SECONDS = 120  # pytest-timeout, per test
COLLECTING = "collecting "  # how `failures` names a module whose import failed
IGNORED_MAX = 4  # modules left out after import failures before a mutant's run gives up


@dataclass(frozen=True, slots=True)
class Mutant:
    name: str
    path: str  # relative to the repository root
    original: str  # must occur exactly once in the file
    replacement: str
    why: str  # the rule the patch breaks


ENGINE = "consensus/pbft/engine.py"
VOTING = "consensus/pbft/voting.py"
VIEW_CHANGES = "consensus/pbft/view_changes.py"
CODEC = "consensus/pbft/codec.py"
PERSIST_VOTE = (
    "        out.persist.append("
    "durable.vote_record(kind, seq=seq, view=self.view, digest=digest))\n"
)

MUTANTS: tuple[Mutant, ...] = (
    # 1. quorum: 2f votes instead of the BFT quorum.
    Mutant(
        "quorum-2f-everywhere",
        "consensus/pbft/config.py",
        "        return self.validators.quorum\n",
        "        return 2 * self.validators.max_faulty\n",
        "the engine's quorum is 2f (prepared, committed, checkpoints, view changes)",
    ),
    Mutant(
        "quorum-2f-prepared",
        VOTING,
        "len(slot.matching_prepares()) >= self.engine.config.quorum - 1",
        "len(slot.matching_prepares()) >= self.engine.config.quorum - 2",
        "prepared with the pre-prepare and 2f - 1 PREPAREs (2f votes)",
    ),
    Mutant(
        "quorum-2f-committed",
        VOTING,
        "if not slot.prepared or len(commits) < self.engine.config.quorum:",
        "if not slot.prepared or len(commits) < self.engine.config.quorum - 1:",
        "committed-local with 2f COMMITs",
    ),
    # 2. prepared certificates lost at view change.
    Mutant(
        "view-change-drops-certificates",
        VIEW_CHANGES,
        "prepared=engine.log.certificates(),",
        "prepared=(),",
        "VIEW-CHANGE carries an empty P",
    ),
    Mutant(
        "restart-forgets-certificates",
        ENGINE,
        "                self.log.slot(seq).certificate = certificate\n",
        "                pass\n",
        "persisted certificates are not reloaded, so a VIEW-CHANGE after a restart lacks them",
    ),
    # 3. sequence numbers restart at a view change.
    Mutant(
        "view-change-resets-seq-to-checkpoint",
        VIEW_CHANGES,
        "engine.next_seq = max(engine.committed_height, plan.max_seq, engine.log.low) + 1",
        "engine.next_seq = engine.log.low + 1",
        "the new primary numbers from the stable checkpoint + 1, ignoring O and commits",
    ),
    Mutant(
        "view-change-resets-seq-ignoring-o",
        VIEW_CHANGES,
        "engine.next_seq = max(engine.committed_height, plan.max_seq, engine.log.low) + 1",
        "engine.next_seq = max(engine.committed_height, engine.log.low) + 1",
        "the new primary numbers from its committed height + 1, ignoring O",
    ),
    Mutant(
        "view-change-resets-seq-to-one",
        VIEW_CHANGES,
        "engine.next_seq = max(engine.committed_height, plan.max_seq, engine.log.low) + 1",
        "engine.next_seq = 1",
        "the new primary numbers from 1",
    ),
    # 4. votes sent without being persisted first.
    Mutant(
        "skip-persist-all-votes",
        ENGINE,
        PERSIST_VOTE,
        "        pass\n",
        "no vote (pre-prepare, PREPARE, COMMIT) is persisted before it is sent",
    ),
    Mutant(
        "skip-persist-prepare-votes",
        ENGINE,
        PERSIST_VOTE,
        "        if kind != durable.VOTE_PREPARE:\n"
        "            out.persist.append(\n"
        "                durable.vote_record(kind, seq=seq, view=self.view, digest=digest)\n"
        "            )\n",
        "a backup's PREPARE is sent without being persisted",
    ),
    Mutant(
        "skip-persist-primary-pre-prepare",
        ENGINE,
        PERSIST_VOTE,
        "        if kind != durable.VOTE_PRE_PREPARE:\n"
        "            out.persist.append(\n"
        "                durable.vote_record(kind, seq=seq, view=self.view, digest=digest)\n"
        "            )\n",
        "the primary's pre-prepare is sent without being persisted",
    ),
    Mutant(
        "skip-persist-certificate",
        VOTING,
        "        out.persist.append(durable.certificate_record(certificate))\n",
        "        pass\n",
        "a prepared certificate is kept in memory only",
    ),
    Mutant(
        "restart-forgets-votes",
        ENGINE,
        "self.votes: dict[tuple[int, int], bytes] = dict(state.votes)",
        "self.votes: dict[tuple[int, int], bytes] = {}",
        "persisted votes are written but not reloaded",
    ),
    # 5. off-by-one on the high watermark H = h + L.
    Mutant(
        "watermark-accepts-h-plus-l-plus-1",
        "consensus/pbft/log.py",
        "        return self.low < seq <= self.high\n",
        "        return self.low < seq <= self.high + 1\n",
        "the log takes seq = h + L + 1",
    ),
    Mutant(
        "watermark-rejects-h-plus-l",
        "consensus/pbft/log.py",
        "        return self.low < seq <= self.high\n",
        "        return self.low < seq < self.high\n",
        "the log refuses seq = h + L",
    ),
    Mutant(
        "backup-defers-h-plus-l",
        ENGINE,
        "return message.view == self.view and message.seq > self.log.high",
        "return message.view == self.view and message.seq >= self.log.high",
        "a backup buffers messages for seq = h + L instead of using them",
    ),
    Mutant(
        "backup-takes-h-plus-l-plus-1",
        ENGINE,
        "return message.view == self.view and message.seq > self.log.high",
        "return message.view == self.view and message.seq > self.log.high + 1",
        "a backup handles messages for seq = h + L + 1 instead of buffering them",
    ),
    # More rules the safety argument uses.
    Mutant(
        "engine-accepts-pre-prepare-from-non-primary",
        ENGINE,
        '        if pre_prepare.replica != self.primary_of(self.view):\n            return "not',
        '        if False:\n            return "not',
        "the engine takes a PRE-PREPARE signed by a backup (codec check left in place)",
    ),
    Mutant(
        "codec-accepts-pre-prepare-from-non-primary",
        CODEC,
        "        if message.replica != self._config.primary_of(message.view):\n"
        '            return f"pre-prepare from',
        '        if False:\n            return f"pre-prepare from',
        "the edge takes a PRE-PREPARE signed by a backup",
    ),
    Mutant(
        "certificate-checks-first-prepare-signature-only",
        CODEC,
        "            if (reason := self._prepare_invalid(prepare)) is not None:\n",
        "            if prepare is certificate.prepares[0] and (\n"
        "                reason := self._prepare_invalid(prepare)\n"
        "            ) is not None:\n",
        "a VIEW-CHANGE certificate is checked on its first PREPARE signature only",
    ),
    Mutant(
        "checkpoint-proof-checks-first-signature-only",
        CODEC,
        "            if (reason := self._checkpoint_invalid(checkpoint)) is not None:\n",
        "            if checkpoint is proof[0] and (\n"
        "                reason := self._checkpoint_invalid(checkpoint)\n"
        "            ) is not None:\n",
        "a stable-checkpoint proof is checked on its first signature only",
    ),
    Mutant(
        "prepare-without-chain-link",
        VOTING,
        "        return before is not None and before.prepared and before.digest == prev_hash\n",
        "        return True\n",
        "a backup prepares seq before seq - 1 is prepared (out of order, unlinked)",
    ),
    Mutant(
        "equivocation-ignored",
        ENGINE,
        "            if slot.digest != pre_prepare.digest:\n",
        "            if False:\n",
        "a second digest for one (view, seq) is dropped as a duplicate, not evidence",
    ),
    Mutant(
        "new-view-o-not-recomputed",
        VIEW_CHANGES,
        "        if offered != plan.digests:\n",
        "        if False:\n",
        "backups install a NEW-VIEW whose O differs from the one V implies",
    ),
    Mutant(
        "new-view-lowest-view-certificate",
        "consensus/pbft/view_change.py",
        "if current is None or certificate.view > current.view:",
        "if current is None or certificate.view < current.view:",
        "O takes the lowest-view certificate per seq",
    ),
    Mutant(
        "one-view-change-moves-a-replica",
        VIEW_CHANGES,
        "        if len(higher) >= engine.config.weak_quorum:\n",
        "        if len(higher) >= 1:\n",
        "a single (possibly faulty) VIEW-CHANGE pulls a replica into a higher view",
    ),
    Mutant(
        "checkpoint-stable-with-2f",
        "consensus/pbft/checkpoint.py",
        "        if len(matching) < self._quorum:\n",
        "        if len(matching) < self._quorum - 1:\n",
        "a checkpoint becomes stable (the log is garbage-collected) with 2f votes",
    ),
    Mutant(
        "stale-view-votes-counted",
        ENGINE,
        '        if vote.view < self.view:\n            return "stale view"\n',
        "",
        "PREPAREs / COMMITs of an older view count towards the current one",
    ),
    Mutant(
        "fetched-seal-not-checked",
        "consensus/pbft/catchup.py",
        "    return sealed.invalid_for(validators)\n",
        "    return None\n",
        "catch-up commits fetched blocks without checking their seals",
    ),
)


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    verdict: str  # "killed", "SURVIVED", "STALE", "ERROR"
    failures: tuple[str, ...]  # failing tests in run order, then modules that failed to import
    seconds: float

    @property
    def ok(self) -> bool:
        return self.verdict == "killed"


def copy_tree(destination: Path) -> Path:
    root = destination / "repo"
    shutil.copytree(REPO, root, ignore=COPY_IGNORE, symlinks=True)
    return root


def apply_patch(root: Path, mutant: Mutant) -> str | None:
    """Patch the copy; the original text to restore, or None if the mutant is stale."""
    path = root / mutant.path
    text = path.read_text(encoding="utf-8")
    if text.count(mutant.original) != 1:
        return None
    path.write_text(text.replace(mutant.original, mutant.replacement), encoding="utf-8")
    return text


def failures(junit: Path, output: str) -> list[str]:
    """Failing tests as `path::name` in run order, then modules whose collection failed
    (test_codec.py builds its samples with a real run at import): a named test says more
    about what broke. From the JUnit XML, or pytest's summary lines if there is none."""
    tests: list[str] = []
    modules: list[str] = []
    if junit.exists():
        for case in ElementTree.parse(junit).getroot().iter("testcase"):
            if case.find("failure") is None and case.find("error") is None:
                continue
            classname, name = case.get("classname", ""), case.get("name", "?")
            if classname:
                tests.append(f"{classname.replace('.', '/')}.py::{name}")
            else:
                modules.append(f"{COLLECTING}{name.replace('.', '/')}.py")
        return tests + modules
    return [
        line.split(" ", 2)[1]
        for line in output.splitlines()
        if line.startswith(("FAILED ", "ERROR ")) and " " in line
    ]


def imports_outside_copy(root: Path) -> list[str]:
    """Packages that the copy's interpreter would import from elsewhere (the editable
    install points at the real tree); a mutant patched into the copy must be what runs."""
    probe = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    print(name, importlib.import_module(name).__file__)\n"
    )
    packages = ("consensus.pbft.engine", "protocol.quorum", "tests.consensus.pbft.pbft_harness")
    completed = subprocess.run(
        [str(PYTHON), "-c", probe, *packages],
        cwd=root,
        env=_env(root, sim_seeds=None),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    outside = []
    for line in completed.stdout.splitlines():
        name, _, location = line.partition(" ")
        if not Path(location).resolve().is_relative_to(root.resolve()):
            outside.append(f"{name} from {location}")
    return outside


def _env(root: Path, *, sim_seeds: str | None) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("SIM_SEED", None)
    env.pop("SIM_SEEDS", None)
    if sim_seeds:
        env["SIM_SEEDS"] = sim_seeds
    return env


def run_suite(
    root: Path,
    *,
    test_paths: Sequence[str],
    sim_seeds: str | None,
    markers: str = MARKERS,
    every_failure: bool = False,
    ignore: Sequence[str] = (),
) -> tuple[int, list[str], float]:
    """Run the chosen tests in the copy; (pytest exit code, failures, seconds). By default
    it stops at the first failure (-x); `every_failure` runs everything."""
    junit = root / "mutation-junit.xml"
    junit.unlink(missing_ok=True)
    env = _env(root, sim_seeds=sim_seeds)
    command = [
        str(PYTHON),
        "-m",
        "pytest",
        *test_paths,
        "-m",
        markers,
        *(["--continue-on-collection-errors"] if every_failure else ["-x"]),
        "-q",
        "-p",
        "no:cacheprovider",
        *(f"--ignore={path}" for path in ignore),
        f"--timeout={TEST_TIMEOUT_SECONDS}",
        f"--junitxml={junit}",
    ]
    started = time.monotonic()
    try:
        completed = subprocess.run(
            command,
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return -1, [f"(whole run exceeded {RUN_TIMEOUT_SECONDS} s)"], time.monotonic() - started
    seconds = time.monotonic() - started
    output = completed.stdout + completed.stderr
    return completed.returncode, failures(junit, output), seconds


def check_mutant(root: Path, mutant: Mutant, *, options: argparse.Namespace) -> Result:
    original_text = apply_patch(root, mutant)
    if original_text is None:
        return Result(mutant.name, "STALE", (f"snippet not found once in {mutant.path}",), 0.0)
    try:
        return _run_mutant(root, mutant, options=options)
    finally:
        (root / mutant.path).write_text(original_text, encoding="utf-8")


def _run_mutant(root: Path, mutant: Mutant, *, options: argparse.Namespace) -> Result:
    """With `-x`, a module whose import-time setup fails stops the run before any test.
    Such a module is then left out and the run repeated, so the table names the first
    *test* that fails, too."""
    ignored: list[str] = []
    seconds_total = 0.0
    while True:
        code, failed, seconds = run_suite(
            root,
            test_paths=options.tests,
            sim_seeds=options.sim_seeds,
            markers=options.markers,
            every_failure=options.every_failure,
            ignore=ignored,
        )
        seconds_total += seconds
        first = failed[0] if failed else ""
        retry = code == 1 and first.startswith(COLLECTING) and not options.every_failure
        if not retry or len(ignored) >= IGNORED_MAX:
            break
        ignored.append(first.removeprefix(COLLECTING))
    found = (*failed, *(COLLECTING + module for module in ignored))
    if code == 0:
        return Result(mutant.name, "killed" if ignored else "SURVIVED", found, seconds_total)
    # 1 = tests failed; 2 = interrupted, 3/4 = pytest itself, -1 = our timeout.
    verdict = "killed" if code == 1 else f"ERROR (pytest exit {code})"
    return Result(mutant.name, verdict, found, seconds_total)


def table(results: Sequence[Result], *, every_failure: bool) -> str:
    count = " | failing" if every_failure else ""
    lines = [
        f"| mutant | killed | first failing test{count} | seconds |",
        f"| --- | --- | ---{' | ---:' if every_failure else ''} | ---: |",
    ]
    for result in results:
        failing = f"`{result.failures[0]}`" if result.failures else "-"
        number = f" | {len(result.failures)}" if every_failure else ""
        row = f"| {result.name} | {result.verdict} | {failing}{number} | {result.seconds:.1f} |"
        lines.append(row)
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument(
        "--sim-seeds", metavar="RANGE", help="SIM_SEEDS for the fast sim tier, e.g. 0-9"
    )
    parser.add_argument(
        "--tests",
        nargs="+",
        default=list(TEST_PATHS),
        metavar="PATH",
        help="test files or node ids to run instead of the default PBFT suite",
    )
    parser.add_argument(
        "--markers", default=MARKERS, help=f"pytest -m expression (default: {MARKERS!r})"
    )
    parser.add_argument(
        "--every-failure",
        action="store_true",
        help="run each mutant's whole suite (no -x) and count the tests that fail",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] = sys.argv[1:]) -> int:
    args = parse_args(argv)
    if args.list:
        for mutant in MUTANTS:
            print(f"{mutant.name:48} {mutant.path}: {mutant.why}")
        return 0
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    unknown = set(args.only or ()) - {m.name for m in MUTANTS}
    if unknown:
        print(f"unknown mutants: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="seoulchain-mutation-") as temp:
        root = copy_tree(Path(temp))
        if outside := imports_outside_copy(root):
            print(f"the copy would import {'; '.join(outside)}", file=sys.stderr)
            return 1
        code, failed, seconds = run_suite(
            root, test_paths=args.tests, sim_seeds=args.sim_seeds, markers=args.markers
        )
        print(f"baseline (no mutant): pytest exit {code} in {seconds:.1f} s", flush=True)
        if code != 0:
            print(f"the unmutated suite fails ({', '.join(failed)}); fix it", file=sys.stderr)
            return 1
        results = []
        for mutant in chosen:
            result = check_mutant(root, mutant, options=args)
            print(f"{result.verdict:8} {mutant.name} ({result.seconds:.1f} s)", flush=True)
            results.append(result)
    print()
    print(table(results, every_failure=args.every_failure))
    if args.every_failure:
        for result in results:
            print(f"\n{result.name}:", *(f"  {failure}" for failure in result.failures), sep="\n")
    survivors = [result.name for result in results if not result.ok]
    if survivors:
        print(f"\nnot killed: {', '.join(survivors)}", file=sys.stderr)
        return 1
    print(f"\nall {len(results)} mutants killed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

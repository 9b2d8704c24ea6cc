"""report.md: the human summary of a results document. Pure (document in, text out), so a
canned results.json renders the same report in a unit test."""

from __future__ import annotations

from typing import Any


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(document: dict[str, Any], *, plots: list[str] | None = None) -> str:
    lines = [f"# seoulchain bench — {document['started_at']}", ""]
    lines += _setup(document)
    lines += _runs_table(document["runs"])
    for run in document["runs"]:
        lines += _run_detail(run)
    if document.get("sweep"):
        lines += _sweep(document["sweep"])
    if document.get("prometheus"):
        lines += _prometheus(document["prometheus"])
    if plots:
        lines += ["## Plots", ""] + [f"![{name}]({name})" for name in plots] + [""]
    lines += ["## Teardown", "", str(document.get("teardown", "")), ""]
    return "\n".join(lines)


def _verify_text(verify_us: float | None) -> str:
    """The machine's speed at the start (results minor version 5; absent in older files)."""
    return "" if verify_us is None else f", Ed25519 verify {verify_us:.1f} µs"


def _setup(document: dict[str, Any]) -> list[str]:
    config, env, cluster = document["config"], document["environment"], document["cluster"]
    signing = document["signing"]
    load = env.get("load_average") or []
    return [
        "## Setup",
        "",
        f"- command: `{' '.join(document['command'])}`",
        f"- cluster: {cluster.get('nodes_count')} × {cluster.get('consensus')} "
        f"({'launched' if cluster.get('launched') else 'attached'})",
        f"- txs: {_load_text(signing)}, ~{signing.get('tx_bytes_mean', 0):.0f} B each, "
        f"{signing.get('agencies')} agencies",
        *_setup_line(document.get("setup")),
        f"- signing: {signing.get('txs'):,} txs in {signing.get('seconds', 0):.2f} s "
        f"({signing.get('workers')} worker processes, before the measured runs)",
        f"- machine: {env.get('cpu_count')} CPUs, Python {env.get('python')}, load average "
        + " / ".join(f"{value:.2f}" for value in load)
        + _verify_text(env.get("verify_us")),
        f"- warm-up {config.get('warmup_s')} s excluded from steady-state figures; "
        f"drain up to {config.get('drain_s')} s",
        "",
    ]


def _load_text(signing: dict[str, Any]) -> str:
    mix = signing.get("mix")
    if not mix:
        return "notary anchors"
    weights = ",".join(f"{name}={weight}" for name, weight in mix.get("weights", {}).items())
    return f"mix {weights} ({mix.get('citizens')} citizen keys)"


def _setup_line(setup: dict[str, Any] | None) -> list[str]:
    if not setup:
        return []
    return [
        f"- mix setup (committed before the runs): {setup.get('txs', 0):,} txs, "
        f"{setup.get('elections', 0)} elections, {setup.get('fillers', 0)} filler txs, "
        f"{setup.get('seconds', 0):.1f} s, height {setup.get('height_after')}"
    ]


def _runs_table(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## Results",
        "",
        "| run | offered | sent/s | committed/s | p50 ms | p90 ms | p99 ms | max ms "
        "| committed | rejected | node CPU ms/tx | loadgen CPU s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        latency = run.get("latency") or {}
        offered = (
            f"{run['offered_tps']:g} tx/s"
            if run["mode"] == "open"
            else f"closed, {run['concurrency']} workers"
        )
        cpu = run.get("node_cpu_s_per_committed_tx")
        lines.append(
            f"| {run['label']} | {offered} | {_num(run.get('sent_tps'))} "
            f"| {_num(run['throughput_tps'])} | {_ms(latency.get('p50_s'))} "
            f"| {_ms(latency.get('p90_s'))} | {_ms(latency.get('p99_s'))} "
            f"| {_ms(latency.get('max_s'))} | {run['committed']:,} "
            f"| {sum(run['rejected'].values()):,} | {_ms(cpu)} "
            f"| {run['loadgen_cpu_s']:.2f} |"
        )
    return [*lines, ""]


def _run_detail(run: dict[str, Any]) -> list[str]:
    lines = [f"### {run['label']}", ""]
    lines.append(
        f"- sent {run['sent']:,}, committed {run['committed']:,}, still pending at the end "
        f"{run.get('pending_at_end', 0):,}; {run.get('blocks', 0)} blocks, "
        f"mean {_num(run.get('block_txs_mean'))} txs/block, height {run.get('height_max')}"
    )
    if run["rejected"]:
        reasons = ", ".join(f"{reason}: {count:,}" for reason, count in run["rejected"].items())
        lines.append(f"- rejected by reason: {reasons}")
        for reason, sample in run.get("reject_samples", {}).items():
            lines.append(f"  - `{reason}` e.g. {sample!r}")
    for node, reason in (run.get("streams_ended") or {}).items():
        lines.append(f"- event stream of {node} ended during the run: {reason}")
    if run.get("malformed_events"):
        lines.append(f"- {run['malformed_events']} malformed NewBlock events ignored")
    sender = run.get("sender", {})
    lines.append(
        f"- sender: {sender.get('calls', 0):,} calls, {sender.get('call_errors', 0)} failed, "
        f"worst lateness {_ms(sender.get('behind_s_max'))} ms, "
        f"{sender.get('stalls', 0)} waits for in-flight calls"
    )
    lines.append(
        f"- load generator CPU: {run['loadgen_cpu_s']:.2f} s "
        f"({100 * run.get('loadgen_cpu_share', 0):.0f}% of one core over the run)"
    )
    lines += _execution(run.get("execution"))
    lines += _kinds_table(run.get("kinds"))
    lines += _nodes_table(run["nodes"])
    lines += _fault(run.get("fault"))
    consistency = run.get("consistency") or {}
    agreed = consistency.get("same_block_hash") and consistency.get("same_app_hash")
    lines.append(
        f"- end state: {'all nodes agree' if agreed else 'NODES DISAGREE OR LAG'} "
        f"(heights {consistency.get('heights')}, app hash {consistency.get('app_hash')})"
    )
    return [*lines, ""]


def _execution(execution: dict[str, Any] | None) -> list[str]:
    """Committed txs the services refused (code != 0), from block_results after the run."""
    if not execution:
        return []
    line = (
        f"- refused at execution: {execution.get('refused_total', 0):,} of "
        f"{execution.get('checked_txs', 0):,} committed txs checked"
    )
    if execution.get("unchecked_blocks"):
        line += f" ({execution['unchecked_blocks']} blocks not checked)"
    lines = [line]
    for key, sample in (execution.get("samples") or {}).items():
        lines.append(f"  - `{key}` e.g. {sample!r}")
    return lines


def _kinds_table(kinds: dict[str, dict[str, Any]] | None) -> list[str]:
    if not kinds or list(kinds) == ["notary.anchor"]:
        return []  # the pure notary load: the run's own figures say it all
    lines = [
        "",
        "| kind | sent | committed | refused at execution | p50 ms | p90 ms | p99 ms | max ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind, entry in kinds.items():
        latency = entry.get("latency") or {}
        codes = entry.get("refused_by_code") or {}
        refused = f"{entry.get('refused_at_execution', 0):,}" + (
            " (" + ", ".join(f"{code}: {count}" for code, count in codes.items()) + ")"
            if codes
            else ""
        )
        lines.append(
            f"| {kind} | {entry['sent']:,} | {entry['committed']:,} | {refused} "
            f"| {_ms(latency.get('p50_s'))} | {_ms(latency.get('p90_s'))} "
            f"| {_ms(latency.get('p99_s'))} | {_ms(latency.get('max_s'))} |"
        )
    return lines


def _nodes_table(nodes: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "| node | CPU s | CPU ms/tx | RSS MiB (max) | blocks | msgs/block | p2p KiB/block "
        "| view changes | own proposal → commit p50 / p99 ms | store write p50 / p99 ms "
        "| consensus write p50 / p99 ms | outputs per consensus write "
        "| signature checks per committed tx |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in nodes.items():
        metrics = entry.get("metrics") or {}
        rss = entry.get("rss_bytes_max")
        kib = metrics.get("p2p_bytes_sent_per_block")
        lines.append(
            f"| {name}{' (killed)' if entry.get('killed') else ''} "
            f"| {_num(entry.get('cpu_s'), 2)} | {_ms(entry.get('cpu_s_per_committed_tx'))} "
            f"| {_num(rss / 2**20 if rss else None)} | {_num(metrics.get('blocks'), 0)} "
            f"| {_num(metrics.get('consensus_messages_per_block'))} "
            f"| {_num(kib / 1024 if kib is not None else None)} "
            f"| {_num(metrics.get('view_changes'), 0)} "
            f"| {_ms(metrics.get('propose_to_commit_p50_s'))} / "
            f"{_ms(metrics.get('propose_to_commit_p99_s'))} "
            f"| {_ms(metrics.get('store_commit_p50_s'))} / "
            f"{_ms(metrics.get('store_commit_p99_s'))} "
            f"| {_ms(metrics.get('consensus_persist_p50_s'))} / "
            f"{_ms(metrics.get('consensus_persist_p99_s'))} "
            f"| {_num(metrics.get('consensus_persist_outputs_mean'), 2)} "
            f"| {_num(metrics.get('signature_checks_per_committed_tx'), 2)} |"
        )
    return [*lines, ""]


def _fault(fault: dict[str, Any] | None) -> list[str]:
    if not fault:
        return []
    if fault.get("error"):
        return [f"- fault {fault['kind']}@{fault['at_s']:g}s FAILED: {fault['error']}"]
    return [
        f"- fault {fault['kind']}@{fault['at_s']:g}s: killed {fault.get('killed_node')} "
        f"(pid {fault.get('killed_pid')}) at {_num(fault.get('killed_at_s'), 2)} s; "
        f"longest time without commits {_num(fault.get('no_commit_gap_s'), 2)} s, "
        f"commits resumed {_num(fault.get('recovery_s'), 2)} s after the kill"
        + ("" if fault.get("recovered") else " — NO COMMITS AFTER THE KILL")
    ]


def _sweep(sweep: dict[str, Any]) -> list[str]:
    lines = ["## Rate sweep", "", "| offered tx/s | committed tx/s | p50 ms | p99 ms |"]
    lines.append("| --- | --- | --- | --- |")
    for index, point in enumerate(sweep["points"]):
        mark = " ← saturated" if index == sweep.get("saturation_index") else ""
        lines.append(
            f"| {point['offered_tps']:g} | {_num(point['committed_tps'])} "
            f"| {_ms(point['p50_s'])} | {_ms(point['p99_s'])}{mark} |"
        )
    saturation = sweep.get("saturation_offered_tps")
    lines.append("")
    lines.append(
        f"Saturation at {saturation:g} tx/s offered (throughput below 90% of offered, or p99 "
        f"over 10× the lowest rate's and over 1 s); best {sweep['max_committed_tps']:.0f} tx/s."
        if saturation is not None
        else f"Not saturated within the sweep; best {sweep['max_committed_tps']:.0f} tx/s."
    )
    return [*lines, ""]


def _prometheus(prometheus: dict[str, Any]) -> list[str]:
    lines = [
        "## Prometheus",
        "",
        f"- server: {prometheus.get('url')} "
        f"({'kept running' if prometheus.get('kept') else 'stopped at teardown'})",
    ]
    for label, figures in (prometheus.get("figures") or {}).items():
        shown = ", ".join(f"{name} = {_num(value, 3)}" for name, value in figures.items())
        lines.append(f"- {label}: {shown}")
    return [*lines, ""]

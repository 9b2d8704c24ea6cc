"""The benchmark harness behind `seoulchain bench` (docs/BENCHMARKS-HOWTO.md).

cli (options) -> app (one invocation) -> cluster (launch/attach/teardown via the CLI),
txgen (pre-signed anchors), runner (one measured run: loadgen + ledger + sampler +
faults), then results/report/plots. Pure math lives in stats, schedule, ledger, promtext.
Reaches the node only through node.client and the `seoulchain` CLI.
"""

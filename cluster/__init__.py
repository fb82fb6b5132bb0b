"""stakeray's cluster layer: the market on Ray, in five layers that import one way.

    config/    YAML schemas (network, hosts, market, clock, workload), one-line errors
    engine/    the market engine (market.py) and the plain actor classes with their
               messages: coordinator, operator and coprocessor hosts, gateway, round
               clock, placement, signing, the allocation audit (never Ray)
    analysis/  ledger history, run and experiment reports, the simulation driver,
               compare, earnings, what-if, the explorer (no Ray)
    runtime/   the only code that knows Ray: deploy, transport, metrics, runs, the
               network commands' Ray side, head, chaos
    cli/       the ``stakeray`` command (a leaf nothing imports)

A layer imports only the layers above it here; ``protocol`` and ``workers``
import nothing from ``cluster``. ``tests/test_layering.py`` checks both from
the import graph. docs/cluster.md has the map module by module.
"""

"""Analysis: ledger history, reports and the simulation driver (ledgers and configs in, no Ray)."""

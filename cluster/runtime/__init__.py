"""The runtime: the only code that knows Ray (deploy, placement, transport, metrics, chaos)."""

"""Configuration: every YAML schema (network, hosts, market, clock, workload), one-line errors."""

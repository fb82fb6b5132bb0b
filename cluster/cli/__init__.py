"""The ``stakeray`` command line: a leaf that nothing else imports."""

from cluster.cli.app import build_parser, main

__all__ = ["build_parser", "main"]

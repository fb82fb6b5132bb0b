"""stakeray's cluster layer: configuration, command line, and (later) the Ray actors."""

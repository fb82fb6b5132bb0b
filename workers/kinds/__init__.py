"""One module per task kind, each with make_inputs, execute, verify and corrupt."""

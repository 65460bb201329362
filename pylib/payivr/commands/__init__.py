"""Subcommands of the payivr CLI, one module per feature."""

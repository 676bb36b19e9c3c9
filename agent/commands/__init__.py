"""Subcommands of the lappguard command line, one module per family."""

"""The lappguard daemon, its log sources, detection, bans and command line."""

__version__ = "0.1.0"

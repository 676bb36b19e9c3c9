"""Parsers of configuration files, each reading only through a Host."""

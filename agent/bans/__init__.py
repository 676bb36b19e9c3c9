"""Banning: Events are counted in jails and become ban Decisions (escalation, allowlist)."""

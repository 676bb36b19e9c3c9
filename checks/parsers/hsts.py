"""The Strict-Transport-Security header (RFC 6797 6.1), as browsers read it."""

from __future__ import annotations

import re

_MAX_AGE = re.compile(r'^\s*max-age\s*=\s*"?(\d+)"?\s*$', re.IGNORECASE)


def hsts_max_age(value: str) -> int | None:
    """The max-age of a header value, or None when it has none (or two, which RFC 6797
    makes the whole header invalid)."""
    ages = [m.group(1) for d in value.split(";") if (m := _MAX_AGE.match(d))]
    return int(ages[0]) if len(ages) == 1 else None

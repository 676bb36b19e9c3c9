"""/etc/os-release (else /usr/lib/os-release): which release a host runs (os-release(5))."""

from __future__ import annotations

import shlex

from checks.hosts import Host, HostError

PATHS = ("/etc/os-release", "/usr/lib/os-release")


def os_release(host: Host) -> dict[str, str]:
    """KEY -> value (shell quoting undone); empty when neither file can be read."""
    for path in PATHS:
        try:
            text = host.read_text(path)
        except HostError:
            continue
        fields = {}
        for line in text.split("\n"):
            key, equals, value = line.strip().partition("=")
            if not equals or key.startswith("#"):
                continue
            try:
                words = shlex.split(value)
            except ValueError:
                continue  # an unclosed quote: the line means nothing
            fields[key] = words[0] if words else ""
        return fields
    return {}

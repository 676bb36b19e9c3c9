"""Exit codes of every lappguard command: a contract that scripts, CI jobs and systemd read.

A failure of lappguard itself is never 1, the code for "findings": the shipped audit
service counts 1 as a successful run, so a crashed daily audit must not look like one.
"""

from __future__ import annotations

OK = 0
#: audit: a check at or above --fail-on failed or could not decide; bans: an address was
#: refused; trail verify: the chain is broken.
FINDINGS = 1
#: The command could not do its job with what it was given: usage, a policy, config or
#: input file in error, a report it cannot write.
USAGE = 2
#: bans: stored, but the firewall failed (the bans are pending and will be applied).
FIREWALL = 3
#: lappguard itself failed (a bug). ``LAPPGUARD_DEBUG=1`` prints the traceback.
INTERNAL = 4
#: Interrupted (Ctrl-C), as shells report a SIGINT.
INTERRUPTED = 130

DEBUG_VARIABLE = "LAPPGUARD_DEBUG"

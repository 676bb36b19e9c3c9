"""php.ini parser against PHP's own ini scanner (``php -c FILE``).

PHP ends an ini line at LF, CR LF or a lone CR, and at nothing else; only space and tab are
blanks. The same bytes go to the php binary and to our parser, and both must read the same
values (or both must find the file broken).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import require_program
from line_breaks import each_separator

from checks.parsers.phpini import ini_bool, parse_ini

#: ``allow_url_fopen`` defaults to On, ``user_agent`` to empty.
SEPARATOR_CASES = (
    "; hidden{sep}allow_url_fopen = Off\n",
    "user_agent = x{sep}\n",
    "{sep}user_agent = x\n",
    "user_agent{sep}= x\n",
    "user_agent = a{sep}b\n",
    'user_agent = "a{sep}b"\n',
    "allow_url_fopen = Off ; comment{sep}user_agent = x\n",
    "{sep}allow_url_fopen = Off\n",
    "user_agent = 'a{sep}b'\n",
    'user_agent = "a\\"{sep}b"\n',
    'user_agent = "a\\\\b$c"{sep}\n',
)
PROBE = "echo json_encode([ini_get('user_agent'), ini_get('allow_url_fopen')]);"


def php_reads(ini: Path) -> tuple[str, bool] | None:
    """(user_agent, allow_url_fopen) as PHP reads ``ini``, or None when PHP finds it broken."""
    done = subprocess.run(
        [require_program("php"), "-c", str(ini), "-r", PROBE],
        env={**os.environ, "PHP_INI_SCAN_DIR": ""},
        capture_output=True,
        check=True,
    )
    if b"syntax error" in done.stdout + done.stderr:
        return None
    user_agent, allow_url_fopen = json.loads(done.stdout)
    return user_agent, allow_url_fopen not in ("", "0")


@each_separator
def test_real_php_splits_ini_lines_like_us(tmp_path, sep):
    for number, case in enumerate(SEPARATOR_CASES):
        ini = tmp_path / f"php{number}.ini"
        text = case.format(sep=sep)
        ini.write_bytes(text.encode())
        settings, problems = parse_ini(str(ini), text)
        truth = php_reads(ini)
        if truth is None:
            assert problems, f"PHP refuses {case!r}; the parser must say so"
            continue
        assert not problems, case
        values = {s.key: s.value for s in settings}
        ours = values.get("user_agent", ""), ini_bool(values.get("allow_url_fopen", "On"))
        assert ours == truth, case

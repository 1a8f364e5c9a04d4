"""DuckDB's SQL, as the repositories write it, in PostgreSQL's dialect: every difference here.

The repositories and migrations are written once (qmark parameters, DuckDB types). The few
places the two dialects differ are rewritten by `translate`, outside single-quoted literals:
- parameters `?` become psycopg's `%s` (and a literal `%` becomes `%%` when there are any);
- `BIGNUM` (DuckDB's arbitrary-precision integer, for uint256) becomes `NUMERIC(78,0)`,
  which holds every uint256 exactly (2**256 has 78 digits);
- `list_contains(list, x)` becomes `x = ANY(list)`;
- `x IN (SELECT unnest(?))` becomes `x = ANY(?)`, typed by `x`.
A list of strings is sent as a binary `text[]` (psycopg sends a lone string as `unknown`, so
PostgreSQL can cast it to the column's type, but cannot guess a list's element type).
Everything else the repositories use is standard SQL both engines accept (ON CONFLICT,
RETURNING, unnest, greatest, gen_random_uuid).
"""

from __future__ import annotations

import re
from functools import lru_cache

_LITERAL = re.compile(r"('(?:[^']|'')*')")
_BIGNUM = re.compile(r"\bBIGNUM\b", re.IGNORECASE)
_LIST_CONTAINS = re.compile(r"list_contains\(\s*([\w.]+)\s*,\s*([\w.]+)\s*\)")
_IN_UNNEST = re.compile(r"\bIN \(SELECT unnest\(\?\)\)", re.IGNORECASE)


@lru_cache(maxsize=1024)
def translate(sql: str, with_parameters: bool = True) -> str:
    """`sql` for PostgreSQL; `with_parameters` when it will be sent with parameters."""
    parts = _LITERAL.split(_without_comments(sql))
    for i in range(0, len(parts), 2):  # even parts are outside quotes
        part = parts[i]
        part = _IN_UNNEST.sub("= ANY(?)", part)  # typed by the column it is compared with
        if with_parameters:
            part = part.replace("%", "%%").replace("?", "%s")
        part = _BIGNUM.sub("NUMERIC(78,0)", part)
        part = _LIST_CONTAINS.sub(r"(\2 = ANY(\1))", part)
        parts[i] = part
    if with_parameters:
        for i in range(1, len(parts), 2):  # a '%' inside a literal too, for psycopg
            parts[i] = parts[i].replace("%", "%%")
    return "".join(parts)


def _without_comments(sql: str) -> str:
    """Drop `--` comments (an apostrophe in one would otherwise open a literal)."""
    lines = []
    for line in sql.splitlines():
        at = line.find("--")
        while at != -1 and line[:at].count("'") % 2:  # inside a literal: not a comment
            at = line.find("--", at + 2)
        lines.append(line if at == -1 else line[:at])
    return "\n".join(lines)

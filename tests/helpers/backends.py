"""Run a test against the live server on each store backend (``server_backend`` in the conftest).

``@BOTH_BACKENDS`` on a test that uses ``live_server``, ``api``, ``api_key``… runs it once on
the SQLite server and once on the PostgreSQL one (ids ``[sqlite]`` and ``[postgres]``): the
contract suites check both backends with the same test functions.
"""

from __future__ import annotations

import pytest

BOTH_BACKENDS = pytest.mark.parametrize(
    "server_backend", ["sqlite", "postgres"], indirect=True, scope="module"
)
#: Only on the SQLite server, as ``[sqlite]``: for a test beside ``BOTH_BACKENDS`` ones that uses a
#: module-scoped fixture built on the server (made once for ``[sqlite]`` rather than twice).
SQLITE_ONLY = pytest.mark.parametrize("server_backend", ["sqlite"], indirect=True, scope="module")
POSTGRES_ONLY = pytest.mark.parametrize(
    "server_backend", ["postgres"], indirect=True, scope="module"
)

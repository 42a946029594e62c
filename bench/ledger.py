"""Audit ledger: append overhead under a sustained search load, and verification speed.

    .venv/bin/python bench/ledger.py [--seconds 60] [--rate 1000] [--threads 8]
                                     [--records 10000000] [--skip-overhead] [--skip-verify]
                                     [--compare-sequential] [--baseline-src DIR]

1. **Overhead** — ``Ledger.append`` of realistic ``SearchFacesByImage`` events (a probe
   SHA-256, three matched FaceIds with Similarity, purpose and case reference) from
   ``--threads`` threads, paced together to ``--rate`` appends/s for ``--seconds``. Each append
   waits for its durable group commit (WAL, ``synchronous=FULL``), exactly as a search does
   before its response leaves. Reports the achieved rate and the median / p95 / p99 / max
   append latency. Goal: median ≤ 2 ms at 1,000 appends/s for 60 s.
2. **Verify** — a ledger of ``--records`` records is built quickly (correctly chained rows, each
   with its MAC, a signed checkpoint every 1,000, made with the ledger's own ``chain.link`` and
   ``signing.checkpoint_payload``, inserted in big transactions with ``synchronous=OFF`` — a
   fixture, not 10 M group commits), then ``Ledger.verify`` is timed (its default: worker
   processes for a long ledger, ``faceledger.audit.parallel``). Reports records/s, seconds
   and the file size. Goal: 10 M records in ≤ 60 s.
3. **Side by side** (``--compare-sequential``) — on the same ledger file, in one run, each in
   a fresh process: ``verify`` in one pass (``ParallelPlan.one_pass()``) and with its default
   plan, and with ``--baseline-src DIR`` also the ``verify`` of another source tree (say the
   code before a change: ``--baseline-src ../main/src``). Wall and CPU seconds (the
   process and its workers), records/s and the load average before each. Written to
   ``bench/results/ledger_verify.json`` for ≥ 1 M records.

Writes ``bench/results/ledger.json`` (full runs only: ≥ 60 s, ≥ 10 M records, nothing
skipped); shorter smoke runs print their JSON instead. The ledger and its key live in a
temporary folder that is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from faceledger.audit import Ledger
from faceledger.audit.chain import KIND_CHECKPOINT, KIND_EVENT, canonical_json, link
from faceledger.audit.keyring import RecordSigner
from faceledger.audit.signing import (
    Tip,
    TipFile,
    Witness,
    checkpoint_payload,
    load_or_create_key,
    write_witness,
)
from faceledger.domain.audit import AuditEvent

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_result

GOAL_MEDIAN_MS = 2.0
GOAL_VERIFY_S = 60.0
CHECKPOINT_EVERY = 1000


def search_event(n: int) -> AuditEvent:
    """A realistic SearchFacesByImage record: three matches, one probe digest."""
    return AuditEvent(
        operation="SearchFacesByImage",
        principal=f"officer-{n % 50:03d}@police.example",
        key_id="FLAK" + uuid.uuid4().hex[:16].upper(),
        roles=("search",),
        source="rekognition",
        request_id=str(uuid.uuid4()),
        outcome="ok",
        purpose="identify a suspect caught on camera",
        case_reference=f"CASE-2025-{n % 10_000:05d}",
        collection_id="watchlist",
        probe_sha256=(uuid.uuid4().hex + uuid.uuid4().hex,),
        result={
            "FaceMatchThreshold": 80.0,
            "FaceMatches": [
                {"FaceId": str(uuid.uuid4()), "Similarity": round(99.5 - 3.1 * i, 4)}
                for i in range(3)
            ],
            "SearchedFaceConfidence": 99.87,
        },
    )


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1)))]


# -- 1. append overhead ----------------------------------------------------------------------
def overhead(folder: Path, seconds: float, rate: float, threads: int) -> dict[str, Any]:
    ledger = Ledger(folder / "data" / "ledger.sqlite3", key_file=folder / "keys" / "ledger.key")
    events = [search_event(n) for n in range(2000)]
    ledger.append(events[0])  # the writer thread, the key and the file exist before timing
    latencies: list[list[float]] = [[] for _ in range(threads)]
    late = [0] * threads
    per_thread = rate / threads
    start = time.perf_counter() + 0.2

    def worker(k: int) -> None:
        mine, n = latencies[k], 0
        offset = k / rate  # threads interleave instead of firing together
        while True:
            due = start + offset + n / per_thread
            if due - start >= seconds:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            elif delay < -0.05:
                late[k] += 1
            t0 = time.perf_counter()
            ledger.append(events[(n * threads + k) % len(events)])
            mine.append(time.perf_counter() - t0)
            n += 1

    cpu0 = time.process_time()
    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    ledger.close()
    report = Ledger(ledger.path, key_file=ledger.key_file).verify()
    values = sorted(x * 1e3 for xs in latencies for x in xs)
    result = {
        "threads": threads,
        "target_rate_per_s": rate,
        "seconds": round(wall, 2),
        "appends": len(values),
        "achieved_rate_per_s": round(len(values) / wall, 1),
        "late_appends": sum(late),
        "latency_ms": {
            "median": round(statistics.median(values), 3),
            "p95": round(_percentile(values, 0.95), 3),
            "p99": round(_percentile(values, 0.99), 3),
            "max": round(values[-1], 3),
        },
        "process_cpu_s": round(cpu, 2),
        "ledger_verifies": report.ok,
        "checkpoints": report.checkpoints,
        "goal_median_ms": GOAL_MEDIAN_MS,
        "meets_goal": statistics.median(values) <= GOAL_MEDIAN_MS,
    }
    print(
        f"overhead: {result['achieved_rate_per_s']}/s for {result['seconds']} s, "
        f"median {result['latency_ms']['median']} ms, p95 {result['latency_ms']['p95']} ms, "
        f"p99 {result['latency_ms']['p99']} ms"
    )
    return result


# -- 2. verification speed -------------------------------------------------------------------
def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (verify's worker processes)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def build(ledger: Ledger, records: int, batch: int = 200_000) -> float:
    """Fill an empty ledger with ``records`` correctly chained and MAC'd records (a signed
    checkpoint every ``CHECKPOINT_EVERY``) and write its witness and tip; returns seconds
    taken."""
    started = time.perf_counter()
    key = load_or_create_key(ledger.key_file)
    signer = RecordSigner(key)
    templates = [
        canonical_json({"kind": KIND_EVENT, "time": time.time(), **search_event(n).to_dict()})
        for n in range(4096)
    ]
    db = sqlite3.connect(ledger.path, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    seq, prev = 0, bytes(32)
    last_cp: Witness | None = None
    while seq < records:
        rows = []
        for _ in range(min(batch, records - seq)):
            seq += 1
            if seq % (CHECKPOINT_EVERY + 1) == 0:
                now = time.time()
                cp = checkpoint_payload(key, ledger.ledger_id, seq - 1, prev.hex(), now)
                body, digest = link(seq, prev, KIND_CHECKPOINT, canonical_json(cp))
                last_cp = Witness(
                    ledger.ledger_id,
                    seq,
                    digest.hex(),
                    seq - 1,
                    prev.hex(),
                    cp["hmac"],
                    now,
                    str(ledger.path.resolve()),
                )
            else:
                body, digest = link(seq, prev, KIND_EVENT, templates[seq % len(templates)])
            rows.append((seq, body, digest, signer.mac(body)))
            prev = digest
        db.execute("BEGIN")
        db.executemany("INSERT INTO records (seq, body, digest, mac) VALUES (?, ?, ?, ?)", rows)
        db.execute("COMMIT")
        print(f"  built {seq:,} / {records:,} records", end="\r", flush=True)
    print()
    if last_cp is not None:
        db.execute(
            "UPDATE meta SET last_checkpoint_seq = ?, last_checkpoint_time = ?",
            (last_cp.seq, last_cp.time),
        )
        write_witness(ledger.witness_file, last_cp)
    tip = Tip(ledger.ledger_id, seq, prev.hex(), 1, signer.kid.hex())
    TipFile(ledger.tip_file).write(Tip(**{**tip.__dict__, "mac": signer.hmac(tip.message()).hex()}))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return time.perf_counter() - started


def verify_speed(
    folder: Path, records: int, side_by_side: bool = False, baseline_src: Path | None = None
) -> dict[str, Any]:
    ledger = Ledger(folder / "data" / "ledger.sqlite3", key_file=folder / "keys" / "ledger.key")
    build_s = build(ledger, records)
    size = ledger.path.stat().st_size
    print(f"built {records:,} records in {build_s:.1f} s ({size / 1e9:.2f} GB)")
    compared = compare(ledger, baseline_src) if side_by_side else None
    load = os.getloadavg()
    cpu0 = _cpu_s()
    report = ledger.verify()
    cpu = _cpu_s() - cpu0
    ledger.close()
    result = {
        "records": records,
        "build_s": round(build_s, 1),
        "file_bytes": size,
        "bytes_per_record": round(size / max(records, 1), 1),
        "verify_s": round(report.seconds, 2),
        "verify_cpu_s": round(cpu, 2),
        "records_per_s": round(report.records / report.seconds) if report.seconds else None,
        "ok": report.ok,
        "checkpoints": report.checkpoints,
        "goal_s_for_10M": GOAL_VERIFY_S,
        "projected_s_for_10M": round(report.seconds * 10_000_000 / max(records, 1), 1),
        "load_average_before": load,
    }
    if compared is not None:
        result["side_by_side"] = compared
    print(
        f"verify: {records:,} records in {report.seconds:.2f} s "
        f"({result['records_per_s']:,}/s), ok={report.ok}"
    )
    return result


_TIMED_VERIFY = """
import json, os, resource, sys, time
from pathlib import Path
from faceledger.audit import Ledger
path, key_file, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
kwargs = {}
if mode != "baseline":
    from faceledger.audit.parallel import ParallelPlan
    kwargs["plan"] = ParallelPlan.one_pass() if mode == "one_pass" else ParallelPlan.auto()
ledger = Ledger(path, key_file=key_file)
def cpu(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime
load, cpu0, wall0 = os.getloadavg(), cpu(resource.RUSAGE_SELF), time.perf_counter()
report = ledger.verify(**kwargs)
wall = time.perf_counter() - wall0
cpu_s = cpu(resource.RUSAGE_SELF) - cpu0 + cpu(resource.RUSAGE_CHILDREN)
print(json.dumps({"ok": report.ok, "records": report.records, "wall_s": wall, "cpu_s": cpu_s,
                  "load_average_before": load}))
"""


def compare(ledger: Ledger, baseline_src: Path | None) -> dict[str, Any]:
    """``verify`` of the same file in a fresh process each: the baseline source tree's (if
    given), one pass, and the default plan; wall and CPU seconds, records/s."""
    src = Path(__file__).resolve().parents[1] / "src"
    runs = [("one_pass", src), ("default_plan", src)]
    if baseline_src is not None:
        runs.insert(0, ("baseline", baseline_src.resolve()))
    results: dict[str, Any] = {}
    for mode, tree in runs:
        env = {**os.environ, "PYTHONPATH": str(tree)}
        args = [str(ledger.path), str(ledger.key_file), mode]
        done = subprocess.run(
            [sys.executable, "-c", _TIMED_VERIFY, *args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        run = json.loads(done.stdout.strip().splitlines()[-1])
        run["source"] = str(tree)
        run["records_per_s"] = round(run["records"] / run["wall_s"])
        run["wall_s"], run["cpu_s"] = round(run["wall_s"], 2), round(run["cpu_s"], 2)
        results[mode] = run
        print(
            f"  {mode:>12}: {run['records']:,} records in {run['wall_s']:.2f} s wall, "
            f"{run['cpu_s']:.2f} s CPU ({run['records_per_s']:,}/s), ok={run['ok']}, "
            f"load before {run['load_average_before'][0]:.2f}"
        )
    one = results["one_pass"]["wall_s"]
    for run in results.values():
        run["wall_vs_one_pass"] = round(run["wall_s"] / one, 3) if one else None
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="overhead run length")
    parser.add_argument("--rate", type=float, default=1000.0, help="appends/s, all threads")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--records", type=int, default=10_000_000, help="ledger size to verify")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-verify", action="store_true")
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the test ledgers")
    parser.add_argument(
        "--compare-sequential",
        action="store_true",
        help="also verify the same ledger in one pass and with the default plan, side by side",
    )
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="with --compare-sequential: also time the verify of this source tree (its src/)",
    )
    args = parser.parse_args()
    payload: dict[str, Any] = {
        "machine": machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    folder = Path(tempfile.mkdtemp(prefix="ledger-bench-", dir=args.tmp))
    try:
        if not args.skip_overhead:
            payload["overhead"] = overhead(
                folder / "overhead", args.seconds, args.rate, args.threads
            )
        if not args.skip_verify:
            payload["verify"] = verify_speed(
                folder / "verify", args.records, args.compare_sequential, args.baseline_src
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    payload["machine_after"] = {"load_average": os.getloadavg()}
    full = (
        not args.skip_overhead
        and not args.skip_verify
        and args.seconds >= 60
        and args.records >= 10_000_000
    )
    if full:
        write_result("ledger.json", payload)
    elif args.compare_sequential and args.records >= 1_000_000 and "verify" in payload:
        write_result("ledger_verify.json", payload)
    else:
        print(json.dumps(payload, indent=2, default=float))


if __name__ == "__main__":
    main()

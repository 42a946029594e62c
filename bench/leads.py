"""What a lead costs: a search with a candidate (which writes a lead) beside one without, and
the lead store's own writes and reads, on the embedded SQLite backend.

Enrols one LFW photo, then alternates searches with another photo of the same person (one
candidate: a lead is written) and a photo of someone else (no candidate: no lead), and times
each; then times ``LeadService.open_lead``, ``decide`` and the review queue's first page
directly on the same store (synchronous=FULL: each write is a durable commit).

    .venv/bin/python bench/leads.py [--searches 20] [--leads 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, require_lfw, write_result
from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.leads import LeadCandidate
from faceledger.domain.principals import ROLES, Principal
from faceledger.services.gateway import Gateway


def _ms(samples: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(samples) * 1000, 3),
        "p90_ms": round(sorted(samples)[int(0.9 * (len(samples) - 1))] * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--searches", type=int, default=20)
    parser.add_argument("--leads", type=int, default=300)
    args = parser.parse_args()
    root = require_lfw()
    people = [p for p in sorted(root.iterdir()) if len(list(p.glob("*.jpg"))) >= 2][:2]
    (a1, a2), (b1, _) = (sorted(p.glob("*.jpg"))[:2] for p in people)
    admin = Caller(Principal("admin", ROLES, "K0"), "cli", "bench")
    officer = Caller(Principal("officer", ("search",), "K1"), "native", "bench-search")
    reviewer = Caller(Principal("reviewer", ("review",), "K2"), "native", "bench-review")
    with tempfile.TemporaryDirectory() as tmp:
        gate = Gateway(Settings(data_dir=Path(tmp) / "data", default_threshold_floor=80))
        try:
            gate.create_collection(admin, "bench")
            gate.index_faces(admin, "bench", a1.read_bytes())
            probe_hit, probe_miss = a2.read_bytes(), b1.read_bytes()
            gate.search_faces_by_image(officer, "bench", probe_hit)  # warm the models
            hit: list[float] = []
            miss: list[float] = []
            for _ in range(args.searches):
                for probe, into in ((probe_hit, hit), (probe_miss, miss)):
                    start = time.perf_counter()
                    result = gate.search_faces_by_image(officer, "bench", probe, threshold=80)
                    into.append(time.perf_counter() - start)
                    assert (result.lead_id is not None) == (probe is probe_hit)
            service = gate._leads
            candidates = tuple(
                LeadCandidate(f"face-{k}", "face", 90.0 - k, k, None) for k in range(3)
            )
            writes: list[float] = []
            ids = []
            for _ in range(args.leads):
                start = time.perf_counter()
                ids.append(service.open_lead(officer, "SearchFaces", "bench", 80.0, candidates))
                writes.append(time.perf_counter() - start)
            decides: list[float] = []
            for lead_id in ids[:100]:
                start = time.perf_counter()
                service.decide(reviewer, str(lead_id), "face-0", "rejected", "bench")
                decides.append(time.perf_counter() - start)
            queue: list[float] = []
            for _ in range(20):
                start = time.perf_counter()
                page = service.list_leads(state="open", limit=100)
                queue.append(time.perf_counter() - start)
            assert len(page.leads) == 100
        finally:
            gate.close()
    result = {
        "backend": "sqlite",
        "search_with_candidate_lead_written": _ms(hit),
        "search_without_candidate_no_lead": _ms(miss),
        "open_lead_3_candidates": _ms(writes),
        "decide": _ms(decides),
        "queue_first_page_100_leads": _ms(queue),
        "leads_in_store": args.leads + args.searches + 1,
        "machine": machine(),
    }
    for name, value in result.items():
        print(f"{name}: {value}")
    write_result("leads.json", result)


if __name__ == "__main__":
    main()

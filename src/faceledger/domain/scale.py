"""What a candidate means at the scale of one search (every search answer carries one).

A per-comparison false-match rate (FMR) says how often one face of another person scores at
or above the threshold. A search compares against every face of the collection, so the rate a
user meets is the false-positive identification rate (FPIR): the expected share of searches for
someone not enrolled that return any candidate, at this threshold and this collection size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FLOOR_FROM_SIZE = "collection size"
FLOOR_FROM_POLICY = "policy"


@dataclass(frozen=True)
class SearchScale:
    face_count: int  # faces in the collection when it was searched
    threshold: float  # the effective Similarity threshold
    floor: float  # the collection's floor at that size (or its pinned one)
    floor_source: str  # FLOOR_FROM_SIZE or FLOOR_FROM_POLICY
    target_fpir: float  # the FPIR a default floor keeps to
    target_reachable: bool  # False: no Similarity keeps FPIR within target at this size
    fpir: float | None  # expected FPIR at (threshold, face_count); None: the pack has no table
    fpir_upper: float | None  # its upper bound (95th percentile of a bootstrap)
    hit_rate: float | None  # expected share of searches for enrolled people found first
    fmr: float | None  # per-comparison false-match rate at the threshold

    @property
    def one_in(self) -> int | None:
        """About 1 in N searches for someone not in the collection returns a candidate."""
        if self.fpir is None or self.fpir <= 0:
            return None
        return max(1, round(1.0 / self.fpir))

    @property
    def statement(self) -> str:
        """One plain sentence for people (CLI, web, logs)."""
        if self.fpir is None:
            return (
                "this model pack has no open-set table: the chance of a false candidate is unknown"
            )
        n = self.one_in
        said = (
            f"at this threshold about 1 in {n:,} searches for someone not in this collection "
            "returns a candidate"
            if n is not None
            else "at this threshold a search for someone not in this collection is not expected "
            "to return a candidate"
        )
        if not self.target_reachable:
            said += (
                f" - this model cannot keep that within 1 in {round(1 / self.target_fpir):,} "
                f"at {self.face_count:,} faces"
            )
        return said

    def headers(self) -> dict[str, str]:
        """Response headers (ASCII) for clients whose response body has no room for these."""
        out = {
            "X-FaceLedger-Face-Count": str(self.face_count),
            "X-FaceLedger-Floor": f"{self.floor:g}",
            "X-FaceLedger-Floor-Source": self.floor_source,
            "X-FaceLedger-Target-Fpir": f"{self.target_fpir:g}",
            "X-FaceLedger-Target-Reachable": "true" if self.target_reachable else "false",
            "X-FaceLedger-Scale": self.statement,
        }
        for name, value in (
            ("X-FaceLedger-Fpir", self.fpir),
            ("X-FaceLedger-Fpir-Upper", self.fpir_upper),
            ("X-FaceLedger-Hit-Rate", self.hit_rate),
            ("X-FaceLedger-Fmr", self.fmr),
        ):
            out[name] = "unknown" if value is None else f"{value:.3g}"
        return out

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["one_in"] = self.one_in
        return out

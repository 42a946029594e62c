"""What a candidate means at the scale of one search (every search answer carries one).

A per-comparison false-match rate (FMR) says how often one face of another person scores at
or above the threshold. A search compares against every face of the collection, so the rate a
user meets is the false-positive identification rate (FPIR): the expected share of searches for
someone not enrolled that return any candidate, at this threshold and this collection size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
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

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchScale:
        """A scale kept with ``as_dict`` (a stored-video job's); derived keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class VideoSearchScale:
    """The scale of a stored-video face search. The rates are per *search*, and each person
    tracked in the video is searched as one: if none of the ``persons_tracked`` people is
    enrolled, about ``persons_tracked × FPIR`` of them are expected to get a false candidate
    (an upper bound on the expected false persons of a job; docs/OPEN_SET.md)."""

    scale: SearchScale  # the collection's at the job's start (its effective threshold)
    persons_tracked: int | None  # people tracked (and searched); None until the job succeeded

    @property
    def expected_false_persons(self) -> float | None:
        """``persons_tracked × FPIR``: the false candidates expected if nobody is enrolled."""
        if self.persons_tracked is None or self.scale.fpir is None:
            return None
        return self.persons_tracked * self.scale.fpir

    @property
    def statement(self) -> str:
        """What the rates mean for this job, in one plain sentence."""
        said = "each person tracked in the video is one search"
        expected = self.expected_false_persons
        if self.persons_tracked is None:
            return said
        people = f"{self.persons_tracked:,} " + (
            "person" if self.persons_tracked == 1 else "people"
        )
        if expected is None:
            return f"{said}: {people} tracked here; the chance of a false candidate is unknown"
        return (
            f"{said}: if none of the {people} tracked here is enrolled, about {expected:.2g} "
            f"of them would get a false candidate ({self.persons_tracked:,} × FPIR)"
        )

    def headers(self) -> dict[str, str]:
        """The search's headers (as every search's) plus the job's own."""
        out = self.scale.headers()
        if self.persons_tracked is not None:
            out["X-FaceLedger-Persons-Tracked"] = str(self.persons_tracked)
            expected = self.expected_false_persons
            out["X-FaceLedger-Expected-False-Persons"] = (
                "unknown" if expected is None else f"{expected:.3g}"
            )
        out["X-FaceLedger-Video-Scale"] = self.statement
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.scale.as_dict(),
            "statement": self.scale.statement,
            "persons_tracked": self.persons_tracked,
            "expected_false_persons": self.expected_false_persons,
            "video_statement": self.statement,
        }

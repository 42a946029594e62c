"""Groups of identities, from a CSV ``identity,group``, and the images each group holds."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from faceledger.domain.errors import InvalidParameterError
from faceledger.evaluation.fairness.images import EmbeddedImages, identity_of

UNASSIGNED = "unassigned"
ALL = "all"  # the single group when no groups file is given


# -- groups -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GroupFile:
    """``identity → group`` from a CSV, with its ``#`` comment lines (shown in the report)."""

    mapping: dict[str, str]
    notes: tuple[str, ...] = ()


def parse_groups(lines: Iterable[str], source: str = "groups CSV") -> GroupFile:
    """Parse ``identity,group`` lines; ``#`` lines are notes; an ``identity,group`` header is
    optional. A line without exactly two non-empty fields, or an identity given two different
    groups, raises InvalidParameterError naming the line."""
    mapping: dict[str, str] = {}
    notes: list[str] = []
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text:
            continue
        if text.startswith("#"):
            notes.append(text.lstrip("#").strip())
            continue
        fields = [f.strip() for f in next(csv.reader([text]))]
        if len(fields) != 2 or not all(fields):
            raise InvalidParameterError(
                f"{source} line {number}: expected 'identity,group', got {text!r}"
            )
        identity, group = fields
        if not mapping and (identity.lower(), group.lower()) == ("identity", "group"):
            continue
        if mapping.get(identity, group) != group:
            raise InvalidParameterError(
                f"{source} line {number}: {identity!r} is in group {mapping[identity]!r} "
                f"already, not {group!r}"
            )
        mapping[identity] = group
    return GroupFile(mapping, tuple(notes))


def read_groups(path: Path) -> GroupFile:
    """:func:`parse_groups` on a file (UTF-8)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidParameterError(f"cannot read groups file {path}: {exc}") from None
    return parse_groups(text.splitlines(), source=path.name)


@dataclass(frozen=True)
class Grouping:
    """Group index per identity; ``names`` in the order the groups first appear in the CSV
    (so its author chooses the report's order), ``unassigned`` (if present) last."""

    names: tuple[str, ...]
    of_identity: dict[str, int]
    grouped: bool  # False when no groups file was given (one group, "all")

    @property
    def unassigned(self) -> int:
        """How many identities fell into the unassigned group."""
        if UNASSIGNED not in self.names:
            return 0
        k = self.names.index(UNASSIGNED)
        return sum(1 for g in self.of_identity.values() if g == k)


def assign_groups(identities: Iterable[str], mapping: Mapping[str, str] | None) -> Grouping:
    """Each identity's group; identities the mapping lacks go to ``unassigned``."""
    people = sorted(set(identities))
    if mapping is None:
        return Grouping((ALL,), dict.fromkeys(people, 0), False)
    named = {p: mapping.get(p, UNASSIGNED) for p in people}
    used = set(named.values())
    in_file_order = [g for g in dict.fromkeys(mapping.values()) if g in used and g != UNASSIGNED]
    names = in_file_order + ([UNASSIGNED] if UNASSIGNED in used else [])
    index = {g: k for k, g in enumerate(names)}
    return Grouping(tuple(names), {p: index[g] for p, g in named.items()}, True)


def image_counts(embedded: EmbeddedImages, grouping: Grouping) -> list[dict[str, int]]:
    """Per group: identities, images, images without a face, unreadable images."""
    counts = [
        {"identities": 0, "images": 0, "images_without_face": 0, "images_unreadable": 0}
        for _ in grouping.names
    ]
    for g in grouping.of_identity.values():
        counts[g]["identities"] += 1
    for path, found, bad in zip(embedded.paths, embedded.found, embedded.unreadable, strict=True):
        row = counts[grouping.of_identity[identity_of(path)]]
        row["images"] += 1
        row["images_without_face"] += int(not found and not bad)
        row["images_unreadable"] += int(bad)
    return counts

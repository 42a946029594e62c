"""Leads as a search writes them, for tests that put one in a store by hand (as if its search
had run, or its process had died before the search's record)."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

from faceledger.domain.leads import Lead, LeadCandidate


def a_lead(**changes: Any) -> Lead:
    """A lead with a fresh id, made now by ``officer``'s SearchFacesByImage (``native``) in
    collection ``c`` at threshold 80, with one face candidate (a fresh FaceId) at 93 %;
    ``changes`` replace any of its fields."""
    lead = Lead(
        lead_id=str(uuid.uuid4()),
        created_at=time.time(),
        request_id="req",
        operation="SearchFacesByImage",
        source="native",
        principal="officer",
        collection_id="c",
        threshold=80.0,
        candidates=(LeadCandidate(str(uuid.uuid4()), "face", 93.0, 0),),
    )
    return replace(lead, **changes)

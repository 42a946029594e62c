"""What the lead and key stores gained for issue 18's last items, on both backends (SQLite,
PostgreSQL at the head revision): a lead's searched face is written with the lead and deleted
with it (retention) or with its collection's probes; the ``recorded`` flag keeps a lead out of
the queue until its search's record has landed; a principal's preference is shared by every
store opened on the same data (another process, a restart)."""

from __future__ import annotations

import os
from pathlib import Path

from faceledger.config import Settings
from faceledger.domain.leads import Lead
from faceledger.store.factory import open_key_store, open_lead_store
from faceledger.store.records import LeadProbe
from helpers.leads import a_lead


def _lead(created_at: float, collection_id: str = "c1") -> Lead:
    return a_lead(created_at=created_at, collection_id=collection_id)


def test_a_probe_is_written_with_its_lead_and_deleted_with_it(
    tmp_path: Path, database_url: str | None
) -> None:
    store = open_lead_store(Settings(data_dir=tmp_path, database_url=database_url))
    try:
        sealed = os.urandom(3000)
        photo, by_id, none = _lead(100.0), _lead(200.0), _lead(300.0)
        other = _lead(150.0, collection_id="c2")
        store.add_lead(photo, LeadProbe(sealed=sealed))
        store.add_lead(by_id, LeadProbe(face_id="00000000-0000-4000-8000-000000000001"))
        store.add_lead(none)
        store.add_lead(other, LeadProbe(sealed=b"other"))

        assert store.lead_probe(photo.lead_id) == LeadProbe(sealed=sealed)
        assert store.lead_probe(by_id.lead_id) == LeadProbe(
            face_id="00000000-0000-4000-8000-000000000001"
        )
        assert store.lead_probe(none.lead_id) is None
        assert store.lead(photo.lead_id) == photo  # the lead itself is unchanged

        # retention: the old leads go, with their probes
        deleted = store.delete_leads("c1", created_before=250.0)
        assert sorted(deleted) == sorted([photo.lead_id, by_id.lead_id])
        assert store.lead_probe(photo.lead_id) is None
        assert store.lead_probe(by_id.lead_id) is None
        # a deleted collection: its probes go, its leads stay
        assert store.delete_probes("c2") == 1
        assert store.lead_probe(other.lead_id) is None
        assert store.lead(other.lead_id).lead_id == other.lead_id
        assert store.delete_probes("c2") == 0
    finally:
        store.close()


def test_only_recorded_leads_are_listed_when_asked(
    tmp_path: Path, database_url: str | None
) -> None:
    store = open_lead_store(Settings(data_dir=tmp_path, database_url=database_url))
    try:
        recorded, lost = _lead(100.0), _lead(200.0)
        store.add_lead(recorded)
        store.add_lead(lost)

        def ids(**kw: object) -> list[str]:
            return [lead.lead_id for lead in store.list_leads(**kw)]  # type: ignore[arg-type]

        assert ids(recorded=True) == []  # a new lead waits for its search's record
        store.mark_recorded(recorded.lead_id)
        assert ids(recorded=True) == [recorded.lead_id]
        assert ids(recorded=False) == [lost.lead_id]
        assert ids(state="open", recorded=True) == [recorded.lead_id]
        assert ids() == [recorded.lead_id, lost.lead_id]  # no filter: every lead
    finally:
        store.close()


def test_a_preference_is_shared_by_every_store_on_the_same_data(
    tmp_path: Path, database_url: str | None
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    first, second = open_key_store(settings), open_key_store(settings)
    try:
        assert first.preference("officer", "last_collection") is None
        first.set_preference("officer", "last_collection", "fit", 1.0)
        assert second.preference("officer", "last_collection") == "fit"
        second.set_preference("officer", "last_collection", "other", 2.0)
        assert first.preference("officer", "last_collection") == "other"
        assert first.preference("someone-else", "last_collection") is None
    finally:
        first.close()
        second.close()
    again = open_key_store(settings)  # a restart
    try:
        assert again.preference("officer", "last_collection") == "other"
    finally:
        again.close()

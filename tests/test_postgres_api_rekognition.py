"""The Rekognition contract tests of collections, faces, users, stored-video jobs and stream
processors, re-run with boto3 against a live server whose store (and ledger) is PostgreSQL.
The tests are the same functions as in ``test_rekognition_api``; only the server under them
changes."""

from __future__ import annotations

import sqlite3
from typing import Any

from faceledger.config import Settings
from postgres_live import *  # noqa: F403  (the PostgreSQL live server's fixtures)
from test_rekognition_api import (  # the fixtures and contract tests re-run here
    checker,
    people,
    raw_rek,
    rek,
    test_bad_images_get_rekognition_codes,
    test_collection_lifecycle_and_paging,
    test_index_list_search_delete,
    test_roles_are_enforced,
    test_stored_video_bad_input,
    test_stored_video_face_search,
    test_stream_processor_lifecycle,
    test_users_round_trip,
    walk_video,
)

__all__ = [
    "checker",
    "people",
    "raw_rek",
    "rek",
    "test_bad_images_get_rekognition_codes",
    "test_collection_lifecycle_and_paging",
    "test_index_list_search_delete",
    "test_roles_are_enforced",
    "test_stored_video_bad_input",
    "test_stored_video_face_search",
    "test_stream_processor_lifecycle",
    "test_users_round_trip",
    "walk_video",
]


def test_the_server_keeps_collections_and_faces_in_postgresql(
    rek: Any, live_server_settings: Settings, people: dict[str, list[bytes]]
) -> None:
    """The server under these tests really uses PostgreSQL: what boto3 writes is in the
    database's tables, not in an embedded SQLite store in the data directory."""
    import psycopg

    images = next(iter(people.values()))
    rek.create_collection(CollectionId="pg-proof")
    face = rek.index_faces(CollectionId="pg-proof", Image={"Bytes": images[0]})
    face_id = face["FaceRecords"][0]["Face"]["FaceId"]
    assert live_server_settings.database_url
    with psycopg.connect(live_server_settings.database_url) as conn:
        row = conn.execute(
            "SELECT c.collection_id, vector_dims(f.embedding) FROM faces f "
            "JOIN collections c USING (collection_pk) WHERE f.face_id = %s",
            (face_id,),
        ).fetchone()
    assert row == ("pg-proof", 128)
    embedded = live_server_settings.data_dir / "faceledger.sqlite3"
    if embedded.exists():  # other stores may keep a file there, never collections or faces
        with sqlite3.connect(embedded) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
        assert not tables & {"collections", "faces", "users", "access_keys"}
    rek.delete_collection(CollectionId="pg-proof")

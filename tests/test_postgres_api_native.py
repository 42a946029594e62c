"""The native ``/v1`` contract tests of collections, faces and users, re-run against a live
server whose store (and ledger) is PostgreSQL. The tests are the same functions as in
``test_native_collections``; only the server under them changes."""

from __future__ import annotations

from postgres_live import *  # noqa: F403  (the PostgreSQL live server's fixtures)
from test_native_collections import (  # the fixtures and contract tests re-run here
    collection,
    gallery_people,
    test_collection_lifecycle_and_paging,
    test_forged_next_token_is_invalid_pagination_token,
    test_index_list_search_and_delete_faces,
    test_unknown_collection_is_resource_not_found,
    test_unknown_face_and_user_are_resource_not_found,
    test_user_round_trip,
    user_people,
)

__all__ = [
    "collection",
    "gallery_people",
    "test_collection_lifecycle_and_paging",
    "test_forged_next_token_is_invalid_pagination_token",
    "test_index_list_search_and_delete_faces",
    "test_unknown_collection_is_resource_not_found",
    "test_unknown_face_and_user_are_resource_not_found",
    "test_user_round_trip",
    "user_people",
]

"""The one-door walk (refusals before any verb included) and the forged and replayed requests,
re-run against a live server whose store and ledger are PostgreSQL (the same test functions)."""

from __future__ import annotations

from postgres_live import *  # noqa: F403  (the PostgreSQL live server's fixtures)
from test_forged_requests import probe, test_every_forged_or_replayed_request_is_refused
from test_one_door import cli_env, photos, test_every_route_and_verb_leaves_exactly_its_records

__all__ = [
    "cli_env",
    "photos",
    "probe",
    "test_every_forged_or_replayed_request_is_refused",
    "test_every_route_and_verb_leaves_exactly_its_records",
]

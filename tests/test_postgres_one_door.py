"""The one-door walk, forged and replayed requests, and the refusals' records, re-run against a
live server whose store and ledger are PostgreSQL (the same test functions)."""

from __future__ import annotations

from postgres_live import *  # noqa: F403  (the PostgreSQL live server's fixtures)
from test_forged_requests import probe, test_every_forged_or_replayed_request_is_refused
from test_native_ledger import ledger, test_a_request_failing_validation_is_ledgered_for_its_caller
from test_one_door import cli_env, photos, test_every_route_and_verb_leaves_exactly_its_records
from test_rekognition_ledger import (
    test_refusals_before_any_verb_are_ledgered_with_the_principal_and_collection,
)

__all__ = [
    "cli_env",
    "ledger",
    "photos",
    "probe",
    "test_a_request_failing_validation_is_ledgered_for_its_caller",
    "test_every_forged_or_replayed_request_is_refused",
    "test_every_route_and_verb_leaves_exactly_its_records",
    "test_refusals_before_any_verb_are_ledgered_with_the_principal_and_collection",
]

"""``/v1/leads``: the leads searches made, and reviewers' decisions on them
(``docs/REVIEW.md``).

Each route calls one ``Gateway`` verb (``list_leads``, ``get_lead``, ``review_lead``) in a
worker thread with the request's ``Caller``; the gateway checks the roles (``review`` decides
and reads, ``audit`` reads) and ledgers the call. One module per job, as in
``api/native/collections``: ``params`` (route parameters), ``schemas`` (models), ``mappers``
(domain → models) and ``routes``.

Units: ``similarity`` is the calibrated 0–100 Similarity; times (``created_at``,
``decided_at``) are epoch seconds; ``fpir`` and ``hit_rate`` are shares (0–1).
"""

from __future__ import annotations

from faceledger.api.native.leads.routes import router

__all__ = ["router"]

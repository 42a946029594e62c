"""Video services: stored-video jobs (worker pool, restart-safe) and live stream processors.

- ``service.py``: ``VideoService``, what the gateway holds — one video store, the live event
  hub, this process's owner name, and the two parts below; start-up and shutdown order.
- ``jobs.py``: ``VideoJobs`` — stored-video jobs, the worker pool, leases, results pages.
- ``notifications.py``: a job's SNS-style completion message to a mapped webhook.
- ``processors.py``: ``StreamProcessors`` — stream processor definitions, running them, their
  outputs (JSONL, webhook, server-sent events).
- ``common.py``: what both share (callers as JSON, searchers, video paths, process owners).

The gateway (``services/gateway.py``) authorises and ledgers the calls; these modules do the
work and ledger what happens later (job ends, matches) through ``record``.
"""

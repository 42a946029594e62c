"""Shared builders for the test suites (``tests/unit``, ``tests/contract``, ``tests/integration``).

Test modules import what they share from here (``from helpers.live import start_live_server``),
never from each other or from ``conftest`` (``tests/unit/test_test_layout.py`` checks it).
``tests/`` is on ``sys.path`` through pytest's ``pythonpath`` option in ``pyproject.toml``.
"""

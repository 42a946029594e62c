"""Access keys: the store, the service verbs, bearer authentication and the `keys` CLI."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import stat
import threading
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from pydantic import ValidationError

from faceledger.audit.ledger import Ledger
from faceledger.cli.keys import announce_keys_at_start
from faceledger.config import Settings
from faceledger.domain.errors import (
    IncompleteSignatureError,
    InvalidParameterError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    ResourceNotFoundError,
    ThrottlingError,
    UnrecognizedClientError,
)
from faceledger.domain.principals import Principal
from faceledger.services.keys import AccessKey, KeyService
from faceledger.store.sqlite.faces import SQLiteStore
from helpers.cli import run

KEY_ID = re.compile(r"FLAK[A-Z2-7]{16}")
SECRET = re.compile(r"[A-Za-z0-9_-]{40}")


@pytest.fixture
def keys(tmp_path: Path, database_url: str | None) -> Iterator[KeyService]:
    """A key service on each store backend (SQLite in ``tmp_path``, PostgreSQL)."""
    service = KeyService(Settings(data_dir=tmp_path, database_url=database_url))
    yield service
    service.close()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- create / list / revoke ------------------------------------------------------------------------
def test_create_returns_an_aws_shaped_key_and_its_secret(keys: KeyService) -> None:
    key, secret = keys.create("alice@example.org", ["search", "audit"], "laptop")
    assert KEY_ID.fullmatch(key.key_id) and SECRET.fullmatch(secret)
    assert (key.principal, key.roles, key.description) == (
        "alice@example.org",
        ("search", "audit"),
        "laptop",
    )
    assert key.active and key.revoked_at is None and key.created_at > 1.7e9
    other, other_secret = keys.create("alice@example.org", ["search"])
    assert other.key_id != key.key_id and other_secret != secret


def test_roles_are_deduplicated_in_order(keys: KeyService) -> None:
    key, _ = keys.create("bob", ["enrol", "search", "enrol"])
    assert key.roles == ("enrol", "search")
    assert keys.create("carol", "admin")[0].roles == ("admin",)  # a bare string is one role


@pytest.mark.parametrize(
    ("principal", "roles", "description", "message"),
    [
        ("", ["admin"], "", "principal '' is not valid"),
        ("a b", ["admin"], "", "is not valid"),
        ("x" * 65, ["admin"], "", "1–64 characters"),
        ("al/ice", ["admin"], "", "is not valid"),
        ("alice", [], "", "at least one role"),
        ("alice", ["root"], "", "unknown role.*'root'.*admin, enrol, search, audit"),
        ("alice", ["admin", "Admin"], "", "'Admin'"),
        ("alice", ["admin"], "x" * 257, "at most 256"),
        ("alice", ["admin"], "line\nbreak", "control characters"),
    ],
)
def test_bad_input_is_an_invalid_parameter(
    keys: KeyService, principal: str, roles: list[str], description: str, message: str
) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        keys.create(principal, roles, description)
    assert keys.list(include_revoked=True) == []


def test_list_never_exposes_secrets(keys: KeyService) -> None:
    _, secret = keys.create("alice", ["search"])
    listed = keys.list()
    assert len(listed) == 1 and isinstance(listed[0], AccessKey)
    assert secret not in json.dumps(asdict(listed[0]))
    assert not hasattr(listed[0], "secret")


def test_revoke_keeps_the_key_listed_and_is_idempotent(keys: KeyService) -> None:
    first, _ = keys.create("alice", ["search"])
    second, _ = keys.create("bob", ["audit"])
    revoked = keys.revoke(first.key_id)
    assert not revoked.active and revoked.revoked_at is not None
    assert [k.key_id for k in keys.list()] == [second.key_id]
    assert [k.key_id for k in keys.list(include_revoked=True)] == [first.key_id, second.key_id]
    again = keys.revoke(first.key_id)
    assert again.revoked_at == revoked.revoked_at  # the first revocation time is kept


def test_revoking_an_unknown_key_is_not_found(keys: KeyService) -> None:
    with pytest.raises(ResourceNotFoundError, match="FLAKNOPE"):
        keys.revoke("FLAKNOPE")


def test_revoking_overwrites_the_secret_in_the_file(tmp_path: Path) -> None:
    keys = KeyService(Settings(data_dir=tmp_path))
    key, secret = keys.create("alice", ["search"])
    keys.revoke(key.key_id)
    found = keys.store.get(key.key_id)
    assert found is not None and found[1] == ""
    keys.close()
    files = [p for p in tmp_path.iterdir() if p.name.startswith("faceledger.sqlite3")]
    assert files and all(secret.encode() not in p.read_bytes() for p in files)


def test_keys_persist_across_services(tmp_path: Path, database_url: str | None) -> None:
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    first = KeyService(settings)
    key, secret = first.create("alice", ["enrol"], "ci")
    gone, _ = first.create("bob", ["search"])
    first.revoke(gone.key_id)
    listed = first.list(include_revoked=True)
    first.close()
    second = KeyService(settings)
    assert second.list(include_revoked=True) == listed and len(listed) == 2
    assert second.credentials(key.key_id) == (Principal("alice", ("enrol",), key.key_id), secret)
    with pytest.raises(UnrecognizedClientError):
        second.credentials(gone.key_id)


def test_creating_from_many_threads(keys: KeyService) -> None:
    made: list[str] = []

    def work() -> None:
        for _ in range(5):
            made.append(keys.create("worker", ["search"])[0].key_id)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 40
    assert {k.key_id for k in keys.list()} == set(made)


# -- the database file ---------------------------------------------------------------------------
def test_a_fresh_data_dir_gets_a_private_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "data"
    keys = KeyService(Settings(data_dir=data_dir))
    keys.create("alice", ["admin"])
    assert _mode(data_dir / "faceledger.sqlite3") == 0o600
    assert _mode(data_dir) == 0o700
    for sidecar in ("faceledger.sqlite3-wal", "faceledger.sqlite3-shm"):
        if (data_dir / sidecar).exists():
            assert _mode(data_dir / sidecar) == 0o600


def test_an_existing_readable_database_is_narrowed_and_shared(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "faceledger.sqlite3")
    store.create_collection("cases", "yunet-sface", 128)
    (tmp_path / "faceledger.sqlite3").chmod(0o644)
    keys = KeyService(Settings(data_dir=tmp_path))
    assert _mode(tmp_path / "faceledger.sqlite3") == 0o600
    key, _ = keys.create("alice", ["audit"])
    assert store.collection("cases").collection_id == "cases"  # same file, both tables
    assert keys.credentials(key.key_id)[0].name == "alice"


# -- credentials and bearer authentication -------------------------------------------------------
def test_credentials_of_an_active_key(keys: KeyService) -> None:
    key, secret = keys.create("alice", ["search"])
    principal, got = keys.credentials(key.key_id)
    assert principal == Principal("alice", ("search",), key.key_id) and got == secret
    assert principal.may("SearchFacesByImage") and not principal.may("DeleteCollection")


def test_credentials_refuse_unknown_and_revoked_keys_alike(keys: KeyService) -> None:
    key, _ = keys.create("alice", ["search"])
    keys.revoke(key.key_id)
    for key_id in ("FLAKAAAAAAAAAAAAAAAA", key.key_id):
        with pytest.raises(UnrecognizedClientError) as caught:
            keys.credentials(key_id)
        assert caught.value.message == "The security token included in the request is invalid."


def test_bearer_authenticates_the_principal(keys: KeyService) -> None:
    key, secret = keys.create("alice", ["enrol"])
    expected = Principal("alice", ("enrol",), key.key_id)
    assert keys.authenticate_bearer(f"Bearer {key.key_id}:{secret}") == expected
    assert keys.authenticate_bearer(f"  bearer   {key.key_id}:{secret} ") == expected


@pytest.mark.parametrize("header", [None, "", "   "])
def test_bearer_missing_is_missing_token(keys: KeyService, header: str | None) -> None:
    with pytest.raises(MissingAuthenticationTokenError):
        keys.authenticate_bearer(header)


@pytest.mark.parametrize(
    "header",
    [
        "Basic YWxpY2U6c2VjcmV0",
        "Bearer",
        "Bearer FLAKAAAAAAAAAAAAAAAA",
        "Bearer :secret",
        "Bearer FLAKAAAAAAAAAAAAAAAA:",
        "FLAKAAAAAAAAAAAAAAAA:secret",
        "AWS4-HMAC-SHA256 Credential=x",
    ],
)
def test_bearer_malformed_is_incomplete(keys: KeyService, header: str) -> None:
    with pytest.raises(IncompleteSignatureError, match="Bearer <access key id>:<secret"):
        keys.authenticate_bearer(header)


def test_bearer_unknown_revoked_and_wrong_secret(keys: KeyService) -> None:
    key, secret = keys.create("alice", ["enrol"])
    with pytest.raises(InvalidSignatureError):
        keys.authenticate_bearer(
            f"Bearer {key.key_id}:{secret[:-1]}{'y' if secret.endswith('x') else 'x'}"
        )
    with pytest.raises(InvalidSignatureError):
        keys.authenticate_bearer(f"Bearer {key.key_id}:{secret}é")  # non-ASCII: no crash
    with pytest.raises(UnrecognizedClientError):
        keys.authenticate_bearer(f"Bearer FLAKAAAAAAAAAAAAAAAA:{secret}")
    keys.revoke(key.key_id)
    with pytest.raises(UnrecognizedClientError):
        keys.authenticate_bearer(f"Bearer {key.key_id}:{secret}")


# -- the first admin key ---------------------------------------------------------------------------
def test_ensure_admin_key_is_idempotent(keys: KeyService) -> None:
    keys.create("ops", ["enrol"])  # not an admin: does not count
    created = keys.ensure_admin_key()
    assert created is not None
    key, secret = created
    assert (key.principal, key.roles, key.description) == (
        "admin",
        ("admin", "enrol", "search"),
        "created at first start",
    )
    assert keys.authenticate_bearer(f"Bearer {key.key_id}:{secret}").may("CreateKey")
    assert keys.ensure_admin_key() is None
    assert keys.ensure_admin_key() is None
    keys.revoke(key.key_id)  # the last admin key gone: the next start makes a new one
    replacement = keys.ensure_admin_key()
    assert replacement is not None and replacement[0].key_id != key.key_id


def test_any_active_admin_key_counts(keys: KeyService) -> None:
    keys.create("root", ["enrol", "admin"])
    assert keys.ensure_admin_key() is None


def test_announce_at_start_shows_the_first_key_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path, host="0.0.0.0", port=9000, region="eu-central-1")
    announce_keys_at_start(settings)
    shown = capsys.readouterr()
    (key,) = KeyService(settings).list()
    assert shown.out == "" and key.key_id in shown.err
    secret = KeyService(settings).credentials(key.key_id)[1]
    assert secret in shown.err and "NOT be shown again" in shown.err
    assert 'endpoint_url="http://127.0.0.1:9000"' in shown.err
    assert 'region_name="eu-central-1"' in shown.err
    assert "INSECURE" not in caplog.text
    announce_keys_at_start(settings)
    assert capsys.readouterr().err == ""
    with caplog.at_level(logging.WARNING):
        announce_keys_at_start(settings.model_copy(update={"insecure_accept_any_signature": True}))
    assert "every caller is admin" in caplog.text and "outside development" in caplog.text
    assert secret not in caplog.text


# -- the CLI (real subprocesses) -----------------------------------------------------------------
def test_cli_create_list_revoke(tmp_path: Path) -> None:
    made = run("keys", "create", "--principal", "alice", "--role", "search", "--json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert KEY_ID.fullmatch(created["key_id"]) and SECRET.fullmatch(created["secret"])
    assert created["roles"] == ["search"] and created["endpoint_url"] == "http://127.0.0.1:8080"
    assert created["rate_per_second"] is None and created["burst"] is None  # the defaults

    limited = run(
        "keys", "create", "--principal", "camera-7", "--role", "search",
        "--rate-per-second", "2.5", "--burst", "4", "--json", cwd=tmp_path,
    )  # fmt: skip
    assert limited.returncode == 0, limited.stderr
    assert (json.loads(limited.stdout)["rate_per_second"], json.loads(limited.stdout)["burst"]) == (
        2.5,
        4,
    )

    text = run(
        "keys", "create", "--principal", "ci", "--role", "enrol", "--role", "search",
        "--description", "build server", cwd=tmp_path,
    )  # fmt: skip
    assert text.returncode == 0, text.stderr
    assert "aws_access_key_id=" in text.stdout and "Authorization: Bearer FLAK" in text.stdout
    assert "shown only this once" in text.stdout

    listed = run("keys", "list", "--json", cwd=tmp_path)
    rows = json.loads(listed.stdout)
    assert [r["principal"] for r in rows] == ["alice", "camera-7", "ci"]
    assert created["secret"] not in listed.stdout
    table = run("keys", "list", cwd=tmp_path).stdout
    assert created["key_id"] in table and "enrol, search" in table
    assert created["secret"] not in table

    revoked = run("keys", "revoke", created["key_id"], cwd=tmp_path)
    assert revoked.returncode == 0 and created["key_id"] in revoked.stderr
    active = json.loads(run("keys", "list", "--json", cwd=tmp_path).stdout)
    assert [r["principal"] for r in active] == ["camera-7", "ci"]
    every = json.loads(run("keys", "list", "--all", "--json", cwd=tmp_path).stdout)
    assert [r["active"] for r in every] == [False, True, True]

    # each command is a ledger record of the local operator; no secret ever reaches it
    with Ledger.from_settings(Settings(data_dir=tmp_path / "data")) as ledger:
        records = list(ledger.entries())
    events = [e.event for e in records if e.event is not None]
    assert [(e.operation, e.outcome, e.source) for e in events] == [
        ("CreateKey", "ok", "cli"),
        ("CreateKey", "ok", "cli"),
        ("CreateKey", "ok", "cli"),
        ("ListKeys", "ok", "cli"),
        ("ListKeys", "ok", "cli"),
        ("RevokeKey", "ok", "cli"),
        ("ListKeys", "ok", "cli"),
        ("ListKeys", "ok", "cli"),
    ]
    assert events[0].result["key_id"] == created["key_id"]
    assert events[1].result["rate_per_second"] == 2.5 and events[1].result["burst"] == 4
    assert events[5].result == {"key_id": created["key_id"], "principal": "alice"}
    assert created["secret"] not in json.dumps([e.to_dict() for e in records])


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    bad_role = run("keys", "create", "--principal", "alice", "--role", "root", cwd=tmp_path)
    assert bad_role.returncode == 2
    assert bad_role.stderr.startswith("error: InvalidParameterException: unknown role")
    unknown = run("keys", "revoke", "FLAKAAAAAAAAAAAAAAAA", cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: ResourceNotFoundException:")
    assert "Traceback" not in bad_role.stderr + unknown.stderr


# -- rate limits ---------------------------------------------------------------------------------
class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def _limited(tmp_path: Path, clock: FakeClock, rate: float = 2.0, burst: int = 3) -> KeyService:
    settings = Settings(data_dir=tmp_path, default_rate_per_second=rate, default_burst=burst)
    return KeyService(settings, clock=clock)


def _admitted(keys: KeyService, key_id: str, tries: int) -> int:
    """How many of ``tries`` verified SigV4 requests of ``key_id`` pass the rate limit."""
    passed = 0
    for _ in range(tries):
        try:
            keys.admit(key_id)
        except ThrottlingError:
            continue
        passed += 1
    return passed


def test_a_key_gets_its_burst_then_is_throttled_then_refills(tmp_path: Path) -> None:
    clock = FakeClock()
    keys = _limited(tmp_path, clock, rate=2.0, burst=3)
    key, secret = keys.create("alice", ["search"])
    assert _admitted(keys, key.key_id, 3) == 3
    with pytest.raises(ThrottlingError) as refused:
        keys.admit(key.key_id)
    assert refused.value.code == "ThrottlingException"
    assert refused.value.message == (
        f"Rate exceeded for key {key.key_id}: at most 2 requests per second (burst 3)"
    )
    clock.advance(0.5)  # one token back at 2 per second
    assert _admitted(keys, key.key_id, 5) == 1
    clock.advance(60.0)  # a long pause refills the bucket to its size, no further
    assert _admitted(keys, key.key_id, 10) == 3
    # the bearer path shares the bucket; a wrong secret spends nothing
    clock.advance(1.0)
    with pytest.raises(InvalidSignatureError):
        keys.authenticate_bearer(
            f"Bearer {key.key_id}:{secret[:-1]}{'y' if secret.endswith('x') else 'x'}"
        )
    keys.authenticate_bearer(f"Bearer {key.key_id}:{secret}")
    keys.authenticate_bearer(f"Bearer {key.key_id}:{secret}")
    with pytest.raises(ThrottlingError):
        keys.authenticate_bearer(f"Bearer {key.key_id}:{secret}")


def test_unknown_and_revoked_keys_are_refused_before_the_rate_limit(tmp_path: Path) -> None:
    keys = _limited(tmp_path, FakeClock(), rate=1.0, burst=1)
    key, _ = keys.create("alice", ["search"])
    keys.revoke(key.key_id)
    for _ in range(3):
        with pytest.raises(UnrecognizedClientError):
            keys.credentials(key.key_id)
        with pytest.raises(UnrecognizedClientError):
            keys.credentials("FLAKAAAAAAAAAAAAAAAA")
        with pytest.raises(UnrecognizedClientError):
            keys.admit(key.key_id)


def test_looking_up_a_secret_spends_no_token(tmp_path: Path) -> None:
    """SigV4 looks the secret up before the signature is checked: a forged request naming
    someone's key must not throttle it; only ``admit`` (after verification) spends."""
    keys = _limited(tmp_path, FakeClock(), rate=1.0, burst=1)
    key, _ = keys.create("alice", ["search"])
    for _ in range(5):
        keys.credentials(key.key_id)
    assert _admitted(keys, key.key_id, 3) == 1


def test_each_key_has_its_own_bucket_and_may_override_the_defaults(tmp_path: Path) -> None:
    clock = FakeClock()
    keys = _limited(tmp_path, clock, rate=2.0, burst=3)
    slow, _ = keys.create("camera-7", ["search"], rate_per_second=0.5, burst=1)
    busy, _ = keys.create("batch", ["enrol"], burst=20)  # default rate, own burst
    plain, _ = keys.create("alice", ["search"])
    assert (slow.rate_per_second, slow.burst) == (0.5, 1)
    assert (busy.rate_per_second, busy.burst) == (None, 20)
    assert _admitted(keys, slow.key_id, 5) == 1
    assert _admitted(keys, busy.key_id, 50) == 20
    assert _admitted(keys, plain.key_id, 5) == 3  # the others did not drain this one
    clock.advance(1.0)
    assert _admitted(keys, slow.key_id, 5) == 0  # half a token
    clock.advance(1.0)
    assert _admitted(keys, slow.key_id, 5) == 1
    assert _admitted(keys, busy.key_id, 50) == 4  # 2 s at the default 2 per second
    with pytest.raises(ThrottlingError, match=r"at most 0\.5 requests per second \(burst 1\)"):
        keys.admit(slow.key_id)


def test_a_rate_of_zero_is_unlimited(tmp_path: Path) -> None:
    clock = FakeClock()
    unlimited = _limited(tmp_path / "a", clock, rate=0.0, burst=1)
    key, _ = unlimited.create("alice", ["search"])
    assert _admitted(unlimited, key.key_id, 1000) == 1000
    limited = _limited(tmp_path / "b", clock, rate=1.0, burst=1)
    free, _ = limited.create("ingest", ["enrol"], rate_per_second=0)  # exempt by its own limit
    capped, _ = limited.create("alice", ["search"])
    assert _admitted(limited, free.key_id, 1000) == 1000
    assert _admitted(limited, capped.key_id, 10) == 1


def test_limits_persist_and_older_databases_gain_the_columns(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "faceledger.sqlite3")
    old.executescript(
        "CREATE TABLE access_keys (key_id TEXT PRIMARY KEY, secret TEXT NOT NULL, "
        "principal TEXT NOT NULL, roles TEXT NOT NULL, created_at REAL NOT NULL, "
        "revoked_at REAL, description TEXT NOT NULL DEFAULT '');"
        "INSERT INTO access_keys VALUES ('FLAKOLDOLDOLDOLDOLDO', 's' , 'old', '[\"search\"]', "
        "1.8e9, NULL, '');"
    )
    old.close()
    first = KeyService(Settings(data_dir=tmp_path))
    (legacy,) = first.list()
    assert (legacy.key_id, legacy.rate_per_second, legacy.burst) == (
        "FLAKOLDOLDOLDOLDOLDO",
        None,
        None,
    )
    key, _ = first.create("camera-7", ["search"], rate_per_second=0.25, burst=2)
    first.close()
    clock = FakeClock()
    second = KeyService(Settings(data_dir=tmp_path), clock=clock)
    listed = {k.key_id: k for k in second.list()}
    assert (listed[key.key_id].rate_per_second, listed[key.key_id].burst) == (0.25, 2)
    assert _admitted(second, key.key_id, 5) == 2  # the stored limit, not the default 100
    assert second.limiter.limits(listed["FLAKOLDOLDOLDOLDOLDO"]) == (50.0, 100)


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"rate_per_second": -1}, "rate_per_second must be a number from 0"),
        ({"rate_per_second": float("nan")}, "rate_per_second"),
        ({"rate_per_second": float("inf")}, "rate_per_second"),
        ({"rate_per_second": True}, "rate_per_second"),
        ({"rate_per_second": "5"}, "rate_per_second"),
        ({"burst": 0}, "burst must be an integer from 1"),
        ({"burst": 2.5}, "burst"),
        ({"burst": 10_000_000}, "burst"),
    ],
)
def test_bad_limits_are_invalid_parameters(
    keys: KeyService, limits: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        keys.create("alice", ["search"], **limits)  # type: ignore[arg-type]
    assert keys.list(include_revoked=True) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"default_rate_per_second": -1.0},
        {"default_burst": 0},
        {"default_rate_per_second": float("nan")},
    ],
)
def test_bad_default_limits_are_refused(tmp_path: Path, bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, **bad)  # type: ignore[arg-type]


def test_the_bucket_is_exact_under_threads(tmp_path: Path) -> None:
    keys = _limited(tmp_path, FakeClock(), rate=1.0, burst=25)  # the clock stands still
    key, _ = keys.create("alice", ["search"])
    passed: list[int] = []

    def work() -> None:
        passed.append(_admitted(keys, key.key_id, 10))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(passed) == 25

"""Signed checkpoints: the ledger key, checkpoint HMACs and the witness file.

The hash chain alone proves that records were not edited, removed or reordered *relative to
each other*, but someone who can rewrite the data directory could recompute the whole chain,
or cut off its tail. Two things kept **outside the data directory**, next to the key, close
those gaps:

- the key (32 random bytes, file 0600 in a 0700 folder) signs periodic checkpoint records with
  HMAC-SHA256 over ``ledger_id|covers_seq|covers_digest``: a recomputed chain cannot carry
  valid checkpoints without the key;
- the witness file ``<key dir>/ledger-<ledger_id>.witness.json`` names the latest checkpoint's
  seq and digest: the chain must still contain that record, so truncating the tail shows.

The witness is only ever moved forward (a lock file serialises writers from several
processes) and replaced atomically (temporary file, fsync, rename, fsync of the folder).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from faceledger.audit.key_files import (
    KeyFileKind,
    fsync_dir,
    load_key_file,
    load_or_create_key_file,
    outside_data_dir,
)
from faceledger.domain.errors import LedgerError

KEY_BYTES = 32
LEDGER_KEY = KeyFileKind(
    label="ledger key",
    size_bytes=KEY_BYTES,
    error=LedgerError,
    env="FACELEDGER_LEDGER_KEY_FILE",
    why_outside="a rewritten ledger could be re-signed",
    created_label="ledger signing key",
    logger=__name__,
)


def default_key_file() -> Path:
    """``$XDG_CONFIG_HOME/faceledger/ledger.key``, else ``~/.config/faceledger/ledger.key``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "faceledger" / "ledger.key"


def beside_ledger_key(
    explicit: str | Path | None, ledger_key_file: str | Path | None, name: str
) -> Path:
    """Another key's file: ``explicit`` when set, else ``name`` in the ledger key's folder."""
    if explicit is not None:
        return Path(explicit).expanduser()
    return Path(ledger_key_file or default_key_file()).expanduser().parent / name


def resolve_key_file(key_file: Path | None, data_dir: Path) -> Path:
    """The key file to use; refuses one inside ``data_dir`` (whoever can rewrite the data
    directory must not also hold the key that signs the ledger)."""
    path = Path(key_file) if key_file is not None else default_key_file()
    return outside_data_dir(path.expanduser(), data_dir, LEDGER_KEY)


def load_key(path: Path) -> bytes | None:
    """The key in ``path``, or None if the file does not exist."""
    return load_key_file(path, LEDGER_KEY)


def load_or_create_key(path: Path) -> bytes:
    """The key in ``path``, created (32 random bytes, 0600, folder 0700) if absent.

    Creation is atomic and never overwrites: a complete temporary file is hard-linked into
    place, so two processes starting at once end up with the same key.
    """
    return load_or_create_key_file(path, LEDGER_KEY)


def checkpoint_mac(key: bytes, ledger_id: str, covers_seq: int, covers_digest: str) -> str:
    """HMAC-SHA256 (hex) of ``ledger_id|covers_seq|covers_digest``."""
    message = f"{ledger_id}|{covers_seq}|{covers_digest}".encode("ascii")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def checkpoint_payload(
    key: bytes, ledger_id: str, covers_seq: int, covers_digest: str, now: float
) -> dict[str, Any]:
    """The content of a checkpoint record signing record ``covers_seq`` (digest hex)."""
    return {
        "kind": "checkpoint",
        "time": now,
        "ledger_id": ledger_id,
        "covers_seq": covers_seq,
        "covers_digest": covers_digest,
        "hmac": checkpoint_mac(key, ledger_id, covers_seq, covers_digest),
    }


# -- the witness file -----------------------------------------------------------------------
@dataclass(frozen=True)
class Witness:
    """The latest signed checkpoint of one ledger, as recorded outside the data directory.

    ``seq``/``digest``: the checkpoint record itself; ``covers_*``: the record it signs;
    ``time``: epoch seconds.
    """

    ledger_id: str
    seq: int
    digest: str
    covers_seq: int
    covers_digest: str
    hmac: str
    time: float
    ledger_path: str = ""  # the ledger file it was written for (absolute)


def witness_path(key_file: Path, ledger_id: str) -> Path:
    return key_file.parent / f"ledger-{ledger_id}.witness.json"


def read_witness(path: Path) -> Witness | None:
    """The witness in ``path`` (None if absent); ``LedgerError`` if it is unreadable."""
    try:
        data = json.loads(path.read_text("utf-8"))
        return Witness(
            ledger_id=str(data["ledger_id"]),
            seq=int(data["seq"]),
            digest=str(data["digest"]),
            covers_seq=int(data["covers_seq"]),
            covers_digest=str(data["covers_digest"]),
            hmac=str(data["hmac"]),
            time=float(data["time"]),
            ledger_path=str(data.get("ledger_path", "")),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LedgerError(f"the ledger witness {path} is unreadable: {exc}") from None


def witnesses_in(folder: Path) -> list[tuple[Path, Witness]]:
    """Every readable witness file in ``folder`` (unreadable ones are skipped)."""
    found = []
    for path in sorted(folder.glob("ledger-*.witness.json")):
        try:
            witness = read_witness(path)
        except LedgerError:
            continue
        if witness is not None:
            found.append((path, witness))
    return found


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_witness(path: Path, witness: Witness) -> bool:
    """Durably replace the witness with ``witness`` unless it already names a later one.

    Returns whether the file was written.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _locked(path):
        try:
            current = read_witness(path)
        except LedgerError:
            current = None  # a damaged witness is replaced by a good one
        if current is not None and current.seq >= witness.seq:
            return False
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, (json.dumps(asdict(witness), indent=2) + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    return True


# -- the tip file ---------------------------------------------------------------------------
TIP_BYTES = 512  # fixed size: rewritten in place with one pwrite


@dataclass(frozen=True)
class Tip:
    """The newest record a writer committed, kept beside the key (outside the data folder).

    Written after every commit (without fsync: it must survive a crash of the process, which
    the page cache does), so that cutting records off the *unsigned* tail — after the last
    checkpoint — shows too. ``macs_from``: the first seq that must carry a per-record MAC
    (records before it were written before MACs existed). ``mac``: HMAC under the current key
    of the other fields.
    """

    ledger_id: str
    seq: int
    digest: str
    macs_from: int
    key_id: str  # the key that MACs new records (hex)
    mac: str = ""

    def message(self) -> bytes:
        return (
            f"tip|{self.ledger_id}|{self.seq}|{self.digest}|{self.macs_from}|{self.key_id}"
        ).encode("ascii")


def tip_path(key_file: Path, ledger_id: str) -> Path:
    return key_file.parent / f"ledger-{ledger_id}.tip"


def read_tip(path: Path) -> Tip | None:
    """The tip in ``path`` (None if absent); ``LedgerError`` if it is unreadable."""
    try:
        with path.open("rb") as file:
            # A shared lock: ``TipFile.write`` rewrites the file in place under an exclusive
            # one, and a read racing that write could see half of each tip.
            fcntl.flock(file.fileno(), fcntl.LOCK_SH)
            raw = file.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LedgerError(f"the ledger tip {path} is unreadable: {exc}") from None
    raw = raw.rstrip(b" \n\x00")
    if raw[:20].isdigit() and raw[20:21] == b" ":
        raw = raw[21:]  # the seq prefix (see ``TipFile.write``)
    try:
        data = json.loads(raw or b"null")
        if data is None:
            return None
        return Tip(
            ledger_id=str(data["ledger_id"]),
            seq=int(data["seq"]),
            digest=str(data["digest"]),
            macs_from=int(data["macs_from"]),
            key_id=str(data["key_id"]),
            mac=str(data["mac"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise LedgerError(f"the ledger tip {path} is unreadable: {exc}") from None


class TipFile:
    """Moves the tip file forward after each commit (several processes: a lock file, and the
    tip only ever moves forward)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    def write(self, tip: Tip, *, sync: bool = False) -> None:
        """Write ``tip`` unless the file already names a later record. The file starts with
        the seq in 20 digits (read without parsing JSON), then the tip as JSON."""
        fd = self._open()
        data = b"%020d " % tip.seq + (
            f'{{"ledger_id":"{tip.ledger_id}","seq":{tip.seq},"digest":"{tip.digest}",'
            f'"macs_from":{tip.macs_from},"key_id":"{tip.key_id}","mac":"{tip.mac}"}}'
        ).encode("ascii")
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            head = os.pread(fd, 20, 0)
            if head.isdigit() and len(head) == 20 and int(head) >= tip.seq:
                return
            os.pwrite(fd, data.ljust(TIP_BYTES - 1) + b"\n", 0)
            if sync:
                os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

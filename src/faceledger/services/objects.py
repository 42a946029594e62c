"""Read Rekognition's ``Image.S3Object`` (``Bucket``, ``Name``, ``Version``) into image bytes.

``ImageObjects`` is built from ``Settings`` and serves two kinds of bucket:

* **Local buckets** — ``FACELEDGER_S3_LOCAL_BUCKETS=photos=/srv/photos,archive=/srv/archive``
  (or a JSON object) maps a bucket name to a folder; ``Name`` is a path relative to it.
  Safety rule: the name must be relative, must not contain ``..`` segments, and the file it
  resolves to (after following every symlink) must lie inside the folder — anything else is
  refused with ``InvalidS3ObjectError``, so a caller can never read outside the folders the
  operator listed. Local buckets have no versions: a ``Version`` is refused.
* **Every other bucket** is read with boto3's S3 client from an S3-compatible store (AWS,
  MinIO, Ceph…) configured by ``FACELEDGER_S3_ENDPOINT_URL`` (unset: AWS's endpoint for the
  region), ``FACELEDGER_S3_REGION`` (unset: ``FACELEDGER_REGION``) and
  ``FACELEDGER_S3_ACCESS_KEY_ID`` / ``FACELEDGER_S3_SECRET_ACCESS_KEY`` (unset: boto3's default
  credential chain — environment, ``~/.aws``, instance roles). With an endpoint URL the client
  uses path-style addressing (``http://host/bucket/key``), which every S3 clone serves. The
  client is created on first use, once per ``ImageObjects``, and shared by all threads.

Both paths refuse an object larger than ``max_s3_image_bytes`` (Rekognition's 15 MiB for an
``S3Object``; inline ``Bytes`` stay at ``max_image_bytes``, 5 MiB) from its size before reading
it, and never read more than ``max_s3_image_bytes + 1`` bytes (``ImageTooLargeError``). Every
failure a caller or an operator can cause — no such bucket, key or version, access denied, endpoint
unreachable, no credentials — becomes an ``InvalidS3ObjectError`` naming the bucket and key,
never a traceback or a credential; malformed ``Bucket``/``Name``/``Version`` values (per
botocore's Rekognition model) raise ``InvalidParameterError``. This module imports no FastAPI.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from faceledger.config import Settings
from faceledger.domain.errors import (
    ImageTooLargeError,
    InvalidParameterError,
    InvalidS3ObjectError,
    VideoTooLargeError,
)

logger = logging.getLogger(__name__)

# Shapes S3Bucket, S3ObjectName and S3ObjectVersion of botocore's Rekognition service model.
S3_BUCKET_RE = re.compile(r"[0-9A-Za-z.\-_]{3,255}")
MAX_S3_OBJECT_NAME_CHARS = 1024
MAX_S3_OBJECT_VERSION_CHARS = 1024

# Bytes asked for per read while streaming (the total is capped at max_s3_image_bytes + 1).
_CHUNK_BYTES = 1_048_576

# S3 error codes (ClientError) → the reason shown to the caller.
_S3_ERROR_REASONS = {
    "NoSuchBucket": "the bucket does not exist",
    "NoSuchKey": "the object does not exist",
    "NotFound": "the object does not exist",
    "404": "the object does not exist",
    "NoSuchVersion": "that version of the object does not exist",
    "AccessDenied": "access denied",
    "AllAccessDisabled": "access denied",
    "403": "access denied",
    "InvalidAccessKeyId": "the S3 endpoint does not know FaceLedger's access key",
    "SignatureDoesNotMatch": "the S3 endpoint refused FaceLedger's credentials",
    "InvalidObjectState": "the object is archived and cannot be read",
}


class ImageObjects:
    """Reads ``Image.S3Object`` bytes from local bucket folders or an S3-compatible store.

    Cheap to construct (nothing connects); thread-safe. Call :meth:`close` on shutdown to
    release the S3 client's connection pool.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Any = None
        self._lock = threading.Lock()

    # -- public ---------------------------------------------------------------------------
    def read(self, bucket: str, name: str, version: str | None = None) -> bytes:
        """The object's bytes (at most ``settings.max_s3_image_bytes``).

        Raises:
            InvalidParameterError: ``bucket``, ``name`` or ``version`` is malformed.
            InvalidS3ObjectError: the object cannot be read (see the module docstring).
            ImageTooLargeError: the object is larger than ``settings.max_s3_image_bytes``.
        """
        check_s3_object(bucket, name, version)
        folder = self.settings.s3_local_buckets.get(bucket)
        if folder is not None:
            return self._read_local(folder, bucket, name, version)
        return self._read_remote(bucket, name, version)

    def video_file(
        self, bucket: str, name: str, version: str | None, *, cache_dir: Path, max_bytes: int
    ) -> Path:
        """A local file holding a ``Video.S3Object``: the file itself for a local bucket (same
        safety rule as images), else a download into ``cache_dir`` (at most ``max_bytes``; the
        caller removes it when done). Raises like :meth:`read`, ``VideoTooLargeError`` for size.
        """
        check_s3_object(bucket, name, version)
        where = _describe(bucket, name, version)
        folder = self.settings.s3_local_buckets.get(bucket)
        if folder is not None:
            path = _local_path(folder, bucket, name, where, version)
            try:
                info = path.stat()
            except OSError as exc:
                raise _local_os_error(where, exc) from exc
            if not stat.S_ISREG(info.st_mode):
                raise InvalidS3ObjectError(f"Unable to read S3 object {where}: no such key.")
            if info.st_size > max_bytes:
                raise VideoTooLargeError(
                    f"S3 object {where} is {info.st_size:,} bytes; the maximum is {max_bytes:,}"
                )
            return path
        params = {"Bucket": bucket, "Key": name}
        if version is not None:
            params["VersionId"] = version
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=PurePosixPath(name).suffix[:8])
        try:
            response = self._s3().get_object(**params)
            body = response["Body"]
            size = response.get("ContentLength")
            if isinstance(size, int) and size > max_bytes:
                body.close()
                raise VideoTooLargeError(
                    f"S3 object {where} is {size:,} bytes; the maximum is {max_bytes:,}"
                )
            total = 0
            with os.fdopen(fd, "wb") as out:
                fd = -1
                while chunk := body.read(_CHUNK_BYTES):
                    total += len(chunk)
                    if total > max_bytes:
                        raise VideoTooLargeError(
                            f"S3 object {where} is over the maximum of {max_bytes:,} bytes"
                        )
                    out.write(chunk)
            body.close()
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            Path(tmp).unlink(missing_ok=True)
            raise _s3_error(bucket, where, exc) from exc
        except BaseException:
            if fd >= 0:
                os.close(fd)
            Path(tmp).unlink(missing_ok=True)
            raise
        return Path(tmp)

    def close(self) -> None:
        """Close the S3 client's connections, if one was created (idempotent)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- local buckets --------------------------------------------------------------------
    def _read_local(self, folder: Path, bucket: str, name: str, version: str | None) -> bytes:
        """Read ``name`` from the bucket's folder, enforcing the module's safety rule."""
        where = _describe(bucket, name, version)
        path = _local_path(folder, bucket, name, where, version)
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError as exc:
            raise _local_os_error(where, exc) from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):  # a directory, FIFO or device: not an object
                raise InvalidS3ObjectError(f"Unable to read S3 object {where}: no such key.")
            self._check_size(info.st_size, where)
            data = _read_capped(lambda size: os.read(fd, size), self.settings.max_s3_image_bytes)
        except OSError as exc:
            raise _local_os_error(where, exc) from exc
        finally:
            os.close(fd)
        self._check_size(len(data), where, at_least=True)
        return data

    # -- S3 ---------------------------------------------------------------------------------
    def _s3(self) -> Any:
        """The shared boto3 S3 client, created on first use (double-checked under a lock)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = _make_client(self.settings)
        return self._client

    def _read_remote(self, bucket: str, name: str, version: str | None) -> bytes:
        """GetObject, refusing an oversize object from its ContentLength before reading it."""
        where = _describe(bucket, name, version)
        params = {"Bucket": bucket, "Key": name}
        if version is not None:
            params["VersionId"] = version
        try:
            response = self._s3().get_object(**params)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise _s3_error(bucket, where, exc) from exc
        body = response["Body"]
        try:
            size = response.get("ContentLength")
            if isinstance(size, int):
                self._check_size(size, where)
            data = _read_capped(body.read, self.settings.max_s3_image_bytes)
        except botocore.exceptions.BotoCoreError as exc:
            raise _s3_error(bucket, where, exc) from exc
        finally:
            body.close()  # without draining: an oversize body is dropped with its connection
        self._check_size(len(data), where, at_least=True)
        return data

    # -- limits -----------------------------------------------------------------------------
    def _check_size(self, size_bytes: int, where: str, *, at_least: bool = False) -> None:
        """Raise ImageTooLargeError when ``size_bytes`` exceeds ``settings.max_s3_image_bytes``."""
        limit = self.settings.max_s3_image_bytes
        if size_bytes <= limit:
            return
        more = "at least " if at_least else ""
        raise ImageTooLargeError(
            f"S3 object {where} is {more}{size_bytes:,} bytes; the maximum is {limit:,} bytes "
            f"({limit / 1_048_576:.1f} MiB). Use a smaller or more compressed JPEG or PNG."
        )


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------
def check_s3_object(bucket: Any, name: Any, version: Any = None) -> None:
    """Validate an S3Object's fields like Rekognition's model does (InvalidParameterError)."""
    if not isinstance(bucket, str) or not S3_BUCKET_RE.fullmatch(bucket):
        raise InvalidParameterError(
            f"S3Object.Bucket {bucket!r} is invalid: it must be 3–255 characters of "
            "letters, digits, '.', '-' and '_'."
        )
    _check_length(name, "S3Object.Name", MAX_S3_OBJECT_NAME_CHARS)
    if version is not None:
        _check_length(version, "S3Object.Version", MAX_S3_OBJECT_VERSION_CHARS)


def _check_length(value: Any, field: str, max_chars: int) -> None:
    """A string of 1..``max_chars`` characters, or InvalidParameterError."""
    if not isinstance(value, str) or not 1 <= len(value) <= max_chars:
        shown = f"{value!r}" if not isinstance(value, str) else f"of {len(value)} characters"
        raise InvalidParameterError(
            f"{field} {shown} is invalid: it must be a string of 1–{max_chars} characters."
        )


def _describe(bucket: str, name: str, version: str | None) -> str:
    """``'s3://bucket/name'`` (and its version) for messages."""
    where = f"'s3://{bucket}/{name}'"
    return f"{where} (version {version!r})" if version is not None else where


# --------------------------------------------------------------------------------------------
# Local folders
# --------------------------------------------------------------------------------------------
# Never follow a final symlink swapped in after the check; never block on a FIFO.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def _local_path(
    folder: Path, bucket: str, name: str, where: str, version: str | None = None
) -> Path:
    """The resolved file for ``name``, guaranteed to lie inside the bucket's folder.

    Raises InvalidS3ObjectError for a version (local buckets have none), an unavailable
    folder, an absolute name, a ``..`` segment, a NUL byte, or a path that resolves (through
    symlinks) outside the folder.
    """
    if version is not None:
        raise InvalidS3ObjectError(
            f"Unable to read S3 object {where}: versions are not supported for local "
            f"bucket {bucket!r}."
        )
    try:
        root = folder.resolve(strict=True)
    except (OSError, RuntimeError):
        root = None
    if root is None or not root.is_dir():
        logger.warning("local bucket %r: folder %s is not available", bucket, folder)
        raise InvalidS3ObjectError(
            f"Unable to read S3 object {where}: local bucket {bucket!r} is not available."
        )
    if name.endswith("/"):  # an S3 "folder" marker, never a file
        raise InvalidS3ObjectError(f"Unable to read S3 object {where}: no such key.")
    relative = PurePosixPath(name)
    if "\x00" in name or relative.is_absolute() or ".." in relative.parts:
        raise _outside(where, bucket)
    try:
        path = (root / relative).resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise InvalidS3ObjectError(f"Unable to read S3 object {where}: no such key.") from exc
    if path == root or not path.is_relative_to(root):
        raise _outside(where, bucket)
    return path


def _outside(where: str, bucket: str) -> InvalidS3ObjectError:
    return InvalidS3ObjectError(
        f"Unable to read S3 object {where}: the name must be a relative path that stays "
        f"inside local bucket {bucket!r}."
    )


def _local_os_error(where: str, exc: OSError) -> InvalidS3ObjectError:
    """An OSError from opening or reading a local object, as a caller-safe error (no path)."""
    if isinstance(exc, FileNotFoundError | NotADirectoryError | IsADirectoryError):
        reason = "no such key"
    elif isinstance(exc, PermissionError):
        reason = "access denied"
    elif exc.errno == errno.ELOOP:
        reason = "no such key"  # O_NOFOLLOW met a symlink swapped in after the check
    else:
        reason = f"the file cannot be read ({exc.strerror or type(exc).__name__})"
    return InvalidS3ObjectError(f"Unable to read S3 object {where}: {reason}.")


# --------------------------------------------------------------------------------------------
# S3 client and its errors
# --------------------------------------------------------------------------------------------
def _make_client(settings: Settings) -> Any:
    """A boto3 S3 client for the configured endpoint (3 attempts, 5 s connect, 30 s read).

    Raises InvalidS3ObjectError when the settings cannot make a client (a malformed endpoint
    URL, an access key without its secret).
    """
    config = botocore.config.Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
        s3={"addressing_style": "path"} if settings.s3_endpoint_url else None,
    )
    try:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region or settings.region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=config,
        )
    except (botocore.exceptions.BotoCoreError, ValueError) as exc:
        logger.warning("cannot create the S3 client: %s", exc)
        raise InvalidS3ObjectError(
            "S3 is not configured correctly on this server (check FACELEDGER_S3_ENDPOINT_URL, "
            "FACELEDGER_S3_ACCESS_KEY_ID and FACELEDGER_S3_SECRET_ACCESS_KEY)."
        ) from exc


def _s3_error(bucket: str, where: str, exc: Exception) -> InvalidS3ObjectError:
    """A botocore error as a caller-safe InvalidS3ObjectError (bucket and key, no secrets)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return InvalidS3ObjectError(f"Unable to read S3 object {where}: {_client_reason(exc)}.")
    logger.warning("S3 read of %s failed: %s", where, exc)
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return InvalidS3ObjectError(
            f"Unable to read S3 object {where}: S3 is not configured for bucket {bucket!r} "
            "(no credentials; set FACELEDGER_S3_ACCESS_KEY_ID and "
            "FACELEDGER_S3_SECRET_ACCESS_KEY, or map the bucket to a folder with "
            "FACELEDGER_S3_LOCAL_BUCKETS)."
        )
    if isinstance(exc, botocore.exceptions.ConnectionError):
        reason = "the S3 endpoint could not be reached"
    elif isinstance(exc, botocore.exceptions.ReadTimeoutError):
        reason = "the S3 endpoint did not answer in time"
    else:
        reason = f"the S3 request failed ({type(exc).__name__})"
    return InvalidS3ObjectError(f"Unable to read S3 object {where}: {reason}.")


def _client_reason(exc: botocore.exceptions.ClientError) -> str:
    """The caller-facing reason for an S3 error response, from its code (table-driven)."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "")
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    reason = _S3_ERROR_REASONS.get(code)
    if reason is not None:
        return reason
    shown = "".join(ch for ch in code if ch.isalnum())[:64] or "an error"
    return f"the S3 endpoint answered {shown} (HTTP {status})"


def _read_capped(read: Callable[[int], bytes], limit: int) -> bytes:
    """Read until EOF or until more than ``limit`` bytes arrived (at most ``limit + 1``)."""
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = read(min(_CHUNK_BYTES, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)

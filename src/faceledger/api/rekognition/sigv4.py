"""AWS Signature Version 4 verification (header form), as boto3 and the AWS CLI sign.

The verifier rebuilds the canonical request from what arrived, derives the signing key from
the access key's secret, and compares signatures in constant time::

    canonical request = METHOD \\n canonical URI \\n canonical query \\n canonical headers \\n
                        \\n signed headers \\n hex(SHA-256(body))
    string to sign    = AWS4-HMAC-SHA256 \\n X-Amz-Date \\n date/region/service/aws4_request \\n
                        hex(SHA-256(canonical request))
    signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
                             "aws4_request")

Canonical forms follow AWS's specification and, where it leaves room, botocore: the path is
the one on the request line (still percent-encoded), dot segments and repeated slashes
removed, then percent-encoded once more (non-S3 services sign a doubly encoded path); query
names and values are decoded and re-encoded with AWS's unreserved set, then sorted; header
values are trimmed with inner whitespace runs collapsed, and repeated headers joined by ``,``.
The payload hash is always computed from the body received; a client's
``X-Amz-Content-Sha256`` must equal it (so ``UNSIGNED-PAYLOAD`` is refused).
``X-Amz-Security-Token`` is accepted and otherwise ignored: FaceLedger keys are long-term
keys without session tokens (the header is still covered by the signature when signed).

What the signature must cover is the caller's policy: ``Host`` and ``X-Amz-Date`` always;
``must_sign`` names headers that must be present and signed, ``must_sign_if_present`` headers
that must be signed whenever they arrive (a header the service acts on or records must not be
addable in transit). A header outside the signed set is refused with
``InvalidSignatureException``, in AWS's wording for an unsigned ``Host``. ``on_verified`` sees
each signature that holds, with its principal (the replay check, ``services/replays.py``).

Pure: no web framework, no clock unless ``now`` is omitted, no I/O beyond ``credentials``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

from faceledger.domain.errors import (
    IncompleteSignatureError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
)
from faceledger.domain.principals import Principal

__all__ = ["ALGORITHM", "verify_sigv4"]

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True)
class AuthorizationParts:
    """The parts of an ``AWS4-HMAC-SHA256`` Authorization header."""

    key_id: str
    scope_date: str
    scope_region: str
    scope_service: str
    scope_terminator: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return "/".join(
            (self.scope_date, self.scope_region, self.scope_service, self.scope_terminator)
        )


def _header_lists(headers: Headers) -> dict[str, list[str]]:
    """Header values by lower-case name, repeated headers kept in arrival order."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name.strip().lower(), []).append(value)
    return out


def parse_authorization(value: str) -> AuthorizationParts:
    """Split the header into its credential, signed headers and signature, or say what is
    missing (IncompleteSignatureException, as AWS does)."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise IncompleteSignatureError(
            f"Unsupported Authorization type {algorithm[:40]!r}: "
            f"only {ALGORITHM} signatures are accepted."
        )
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, eq, part = item.strip().partition("=")
        if eq:
            parts[name.strip()] = part.strip()
    missing = [p for p in ("Credential", "SignedHeaders", "Signature") if not parts.get(p)]
    if missing:
        raise IncompleteSignatureError(
            " ".join(f"Authorization header requires '{p}' parameter." for p in missing)
        )
    credential = parts["Credential"].split("/")
    if len(credential) != 5 or not all(credential):
        raise IncompleteSignatureError(
            "Authorization header's Credential is malformed: expected "
            "'<access key id>/<YYYYMMDD>/<region>/<service>/aws4_request'."
        )
    return AuthorizationParts(
        key_id=credential[0],
        scope_date=credential[1],
        scope_region=credential[2],
        scope_service=credential[3],
        scope_terminator=credential[4],
        signed_headers=tuple(h.strip().lower() for h in parts["SignedHeaders"].split(";")),
        signature=parts["Signature"],
    )


def _parse_amz_date(headers: dict[str, list[str]]) -> tuple[str, datetime]:
    """The X-Amz-Date header as sent and as a UTC datetime."""
    values = headers.get("x-amz-date")
    if not values:
        raise IncompleteSignatureError(
            "Authorization header requires existence of a 'X-Amz-Date' header."
        )
    text = values[-1].strip()
    try:
        moment = datetime.strptime(text, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise IncompleteSignatureError(
            f"X-Amz-Date {text[:40]!r} is not a basic ISO-8601 time (YYYYMMDD'T'HHMMSS'Z')."
        ) from None
    return text, moment


def _check_scope(auth: AuthorizationParts, amz_date: str, region: str, service: str) -> None:
    """The credential scope must name the request's date, our region and our service."""
    if auth.scope_date != amz_date[:8]:
        raise InvalidSignatureError(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{auth.scope_date}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    if auth.scope_region != region:
        raise InvalidSignatureError(
            f"Credential should be scoped to a valid region, not '{auth.scope_region}'."
        )
    if auth.scope_service != service:
        raise InvalidSignatureError(f"Credential should be scoped to correct service: '{service}'.")
    if auth.scope_terminator != TERMINATOR:
        raise InvalidSignatureError(
            f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
            f"not '{auth.scope_terminator}'."
        )


def _check_clock(amz_date: str, moment: datetime, now: datetime, max_skew_seconds: int) -> None:
    """Refuse a request signed more than ``max_skew_seconds`` away from ``now`` (replays)."""
    skew = timedelta(seconds=max_skew_seconds)
    minutes = f"{max_skew_seconds / 60:g} min."
    now_text = now.strftime(AMZ_DATE_FORMAT)
    if moment < now - skew:
        limit = (now - skew).strftime(AMZ_DATE_FORMAT)
        raise InvalidSignatureError(
            f"Signature expired: {amz_date} is now earlier than {limit} ({now_text} - {minutes})"
        )
    if moment > now + skew:
        limit = (now + skew).strftime(AMZ_DATE_FORMAT)
        raise InvalidSignatureError(
            f"Signature not yet current: {amz_date} is still later than {limit} "
            f"({now_text} + {minutes})"
        )


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 dot-segment removal, also dropping empty segments (as AWS and botocore do)."""
    if not path:
        return "/"
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and kept else ""
    return first + "/".join(kept) + last


def canonical_uri(raw_path: str) -> str:
    """The request line's path (percent-encoded as sent), normalised and encoded once more."""
    return quote(_remove_dot_segments(raw_path), safe="/~")


def canonical_query(query_string: str) -> str:
    """Name=value pairs, each decoded then encoded with AWS's unreserved set, sorted."""
    if not query_string:
        return ""
    pairs = []
    for item in query_string.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _canonical_headers(headers: dict[str, list[str]], signed: tuple[str, ...]) -> str:
    """``name:value`` lines for the signed headers, values trimmed and whitespace-collapsed."""
    lines = []
    for name in signed:
        values = headers.get(name)
        if values is None:
            raise InvalidSignatureError(f"Signed header '{name}' is not present in the request.")
        lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}")
    return "".join(f"{line}\n" for line in lines)


def _payload_hash(headers: dict[str, list[str]], body: bytes) -> str:
    """Hex SHA-256 of the body; a declared X-Amz-Content-Sha256 must agree with it."""
    actual = hashlib.sha256(body).hexdigest()
    declared = headers.get("x-amz-content-sha256")
    if declared is not None and declared[-1].strip().lower() != actual:
        raise InvalidSignatureError(
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        )
    return actual


def canonical_request(
    *,
    method: str,
    path: str,
    query_string: str,
    headers: dict[str, list[str]],
    signed_headers: tuple[str, ...],
    payload_hash: str,
) -> str:
    """The canonical request that the client signed (``headers`` keyed by lower-case name)."""
    return "\n".join(
        (
            method.upper(),
            canonical_uri(path),
            canonical_query(query_string),
            _canonical_headers(headers, signed_headers),
            ";".join(signed_headers),
            payload_hash,
        )
    )


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The derived key: secret → date → region → service → ``aws4_request``."""
    key = _hmac(f"AWS4{secret}".encode(), date)
    for part in (region, service, TERMINATOR):
        key = _hmac(key, part)
    return key


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def _check_signed_set(
    auth: AuthorizationParts,
    headers: dict[str, list[str]],
    must_sign: Iterable[str],
    must_sign_if_present: Iterable[str],
) -> None:
    """Refuse a request whose signature leaves out a header that the service relies on."""
    required = ["host", "x-amz-date", *must_sign]
    required += [name for name in must_sign_if_present if name in headers]
    for name in required:
        if name.lower() not in auth.signed_headers:
            shown = "-".join(part[:1].upper() + part[1:] for part in name.lower().split("-"))
            raise InvalidSignatureError(
                f"'{shown}' must be a 'SignedHeader' in the AWS Authorization."
            )


def _authorization(headers: dict[str, list[str]]) -> AuthorizationParts:
    """The request's one Authorization header, parsed (missing or repeated: an error)."""
    authorization = headers.get("authorization")
    if not authorization or not authorization[-1].strip():
        raise MissingAuthenticationTokenError("Missing Authentication Token")
    if len(authorization) > 1:
        raise IncompleteSignatureError("The request carries more than one Authorization header.")
    return parse_authorization(authorization[0])


def _check_present(headers: dict[str, list[str]], must_sign: Iterable[str]) -> None:
    """Raise unless every (lower-case) header name in ``must_sign`` arrived."""
    for name in must_sign:
        if name not in headers:
            raise IncompleteSignatureError(
                f"Authorization header requires existence of a '{name}' header."
            )


def _utc(now: datetime | None) -> datetime:
    """``now`` in UTC (default: the current time; a naive ``now`` means UTC)."""
    current = datetime.now(UTC) if now is None else now
    return current.replace(tzinfo=UTC) if current.tzinfo is None else current.astimezone(UTC)


def _signature(secret: str, auth: AuthorizationParts, amz_date: str, canonical: str) -> str:
    """The hex signature ``secret`` gives ``canonical`` in the Authorization header's scope."""
    key = signing_key(secret, auth.scope_date, auth.scope_region, auth.scope_service)
    return hmac.new(
        key, string_to_sign(amz_date, auth.scope, canonical).encode("utf-8"), hashlib.sha256
    ).hexdigest()


def verify_sigv4(
    *,
    method: str,
    path: str,
    query_string: str,
    headers: Headers,
    body: bytes,
    credentials: Callable[[str], tuple[Principal, str]],
    region: str,
    service: str = "rekognition",
    now: datetime | None = None,
    max_skew_seconds: int = 300,
    must_sign: Iterable[str] = (),
    must_sign_if_present: Iterable[str] = (),
    on_verified: Callable[[Principal, str, datetime], None] | None = None,
) -> Principal:
    """The principal whose key signed this request, or an ``AuthError`` saying why not.

    ``path`` is the path of the request line exactly as received, still percent-encoded
    (ASGI's ``raw_path``), without the query; ``query_string`` is the raw query, without
    ``?``. ``headers`` is a mapping or a list of ``(name, value)`` pairs (repeated headers
    are joined as the client signed them); names are matched case-insensitively.
    ``credentials(key_id)`` returns the principal and secret of an active key, or raises
    (``UnrecognizedClientError``). ``now`` (default: the current UTC time; naive means UTC)
    is compared with X-Amz-Date, allowing ``max_skew_seconds`` either way. Lower-case names
    in ``must_sign`` must arrive and be signed, those in ``must_sign_if_present`` be signed when
    they arrive (``Host`` and ``X-Amz-Date`` always). ``on_verified(principal, signature,
    signed_at)`` runs once the signature holds and may refuse by raising (a replay).
    """
    by_name = _header_lists(headers)
    auth = _authorization(by_name)
    amz_date, moment = _parse_amz_date(by_name)
    _check_present(by_name, must_sign)
    _check_signed_set(auth, by_name, must_sign, must_sign_if_present)
    _check_scope(auth, amz_date, region, service)
    _check_clock(amz_date, moment, _utc(now), max_skew_seconds)
    principal, secret = credentials(auth.key_id)
    canonical = canonical_request(
        method=method,
        path=path,
        query_string=query_string,
        headers=by_name,
        signed_headers=auth.signed_headers,
        payload_hash=_payload_hash(by_name, body),
    )
    expected = _signature(secret, auth, amz_date, canonical)
    if not hmac.compare_digest(expected.encode("ascii"), auth.signature.lower().encode("utf-8")):
        raise InvalidSignatureError(MISMATCH_MESSAGE)
    if on_verified is not None:
        on_verified(principal, auth.signature.lower(), moment)
    return principal

"""SigV4 verification against requests signed by botocore's own signer (and AWS's vectors)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from faceledger.api.rekognition.sigv4 import AMZ_DATE_FORMAT, MISMATCH_MESSAGE, verify_sigv4
from faceledger.config import Settings
from faceledger.domain.errors import (
    AuthError,
    IncompleteSignatureError,
    InvalidSignatureError,
    MissingAuthenticationTokenError,
    UnrecognizedClientError,
)
from faceledger.domain.principals import Principal
from faceledger.services.keys import KeyService

REGION = "us-east-1"
BODY = b'{"MaxResults": 10}'


@dataclass(frozen=True)
class Wire:
    """A signed request as the server receives it (what the verifier gets)."""

    method: str
    path: str
    query_string: str
    headers: list[tuple[str, str]]
    body: bytes
    signed_at: datetime = field(compare=False)

    def header(self, name: str) -> str:
        return next(v for k, v in self.headers if k.lower() == name.lower())

    def with_header(self, name: str, value: str) -> Wire:
        kept = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        return replace(self, headers=[*kept, (name, value)])

    def without_header(self, name: str) -> Wire:
        return replace(self, headers=[(k, v) for k, v in self.headers if k.lower() != name.lower()])


def sign(
    key_id: str,
    secret: str,
    *,
    url: str = "http://127.0.0.1:8080/",
    body: bytes = BODY,
    region: str = REGION,
    service: str = "rekognition",
    extra: list[tuple[str, str]] | None = None,
) -> Wire:
    """Sign with botocore exactly as boto3 does, and return what goes over the wire."""
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={
            "X-Amz-Target": "RekognitionService.ListCollections",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    for name, value in extra or []:
        request.headers[name] = value  # HTTPHeaders appends: repeated names stay repeated
    SigV4Auth(Credentials(key_id, secret), service, region).add_auth(request)
    parts = urlsplit(url)
    # urllib3 sends the Host header that botocore signed (netloc; default ports dropped).
    headers = [("Host", parts.netloc), *request.headers.items()]
    signed_at = datetime.strptime(request.headers["X-Amz-Date"], AMZ_DATE_FORMAT)
    return Wire(
        "POST",
        parts.path or "/",
        parts.query,
        headers,
        request.body or b"",
        signed_at.replace(tzinfo=UTC),
    )


def verify(
    wire: Wire,
    credentials: Callable[[str], tuple[Principal, str]],
    *,
    now: datetime | None = None,
    region: str = REGION,
) -> Principal:
    return verify_sigv4(
        method=wire.method,
        path=wire.path,
        query_string=wire.query_string,
        headers=wire.headers,
        body=wire.body,
        credentials=credentials,
        region=region,
        now=now if now is not None else wire.signed_at,
    )


@pytest.fixture
def keys(tmp_path: Path) -> KeyService:
    return KeyService(Settings(data_dir=tmp_path))


@pytest.fixture
def alice(keys: KeyService) -> tuple[str, str]:
    key, secret = keys.create("alice", ["search"])
    return key.key_id, secret


# -- requests that pass ------------------------------------------------------------------------
def test_a_boto3_signed_request_authenticates_its_principal(
    keys: KeyService, alice: tuple[str, str]
) -> None:
    principal = verify(sign(*alice), keys.credentials)
    assert principal == Principal("alice", ("search",), alice[0])


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/?b=2&a=x%20y&a=1&flag",
        "http://127.0.0.1:8080/my%20photos/caf%C3%A9%2Bx~y/",
        "http://127.0.0.1:8080/a/./b/../c//d?Z=%2F&z=a%20b%3D",
        "http://localhost/",
    ],
)
def test_paths_and_queries_needing_encoding_pass(
    keys: KeyService, alice: tuple[str, str], url: str
) -> None:
    assert verify(sign(*alice, url=url), keys.credentials).name == "alice"


def test_repeated_spaces_and_repeated_headers_are_canonicalised(
    keys: KeyService, alice: tuple[str, str]
) -> None:
    wire = sign(
        *alice,
        extra=[("X-Case-Note", "  two   spaces\there  "), ("X-Dup", "a"), ("X-Dup", "b  c")],
    )
    assert "  two   spaces\there  " in [v for _, v in wire.headers]
    assert verify(wire, keys.credentials).name == "alice"


def test_an_empty_body_and_a_matching_content_sha256_pass(
    keys: KeyService, alice: tuple[str, str]
) -> None:
    assert verify(sign(*alice, body=b""), keys.credentials).name == "alice"
    digest = hashlib.sha256(BODY).hexdigest()
    wire = sign(*alice, extra=[("X-Amz-Content-Sha256", digest)])
    assert verify(wire, keys.credentials).name == "alice"


def test_a_security_token_is_accepted_and_ignored(keys: KeyService, alice: tuple[str, str]) -> None:
    request = AWSRequest(method="POST", url="http://127.0.0.1:8080/", data=BODY)
    SigV4Auth(Credentials(alice[0], alice[1], "session-token"), "rekognition", REGION).add_auth(
        request
    )
    headers = [("Host", "127.0.0.1:8080"), *request.headers.items()]
    assert ("X-Amz-Security-Token", "session-token") in headers
    principal = verify_sigv4(
        method="POST",
        path="/",
        query_string="",
        headers=dict(headers),
        body=BODY,
        credentials=keys.credentials,
        region=REGION,
    )
    assert principal.name == "alice"


@pytest.mark.parametrize("seconds", [-240, 240, 0])
def test_clock_skew_within_the_limit_passes(
    keys: KeyService, alice: tuple[str, str], seconds: int
) -> None:
    wire = sign(*alice)
    assert verify(wire, keys.credentials, now=wire.signed_at + timedelta(seconds=seconds))


# -- requests that fail, each with its own error class -------------------------------------------
def test_no_authorization_header_is_missing_token(keys: KeyService, alice: tuple[str, str]) -> None:
    wire = sign(*alice).without_header("Authorization")
    with pytest.raises(MissingAuthenticationTokenError, match=r"^Missing Authentication Token$"):
        verify(wire, keys.credentials)
    with pytest.raises(MissingAuthenticationTokenError):
        verify(sign(*alice).with_header("Authorization", "  "), keys.credentials)


def _edit_authorization(wire: Wire, edit: Callable[[str], str]) -> Wire:
    return wire.with_header("Authorization", edit(wire.header("Authorization")))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda a: a.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"), "Unsupported"),
        (lambda a: "Bearer FLAKAAAAAAAAAAAAAAAA:secret", "Unsupported"),
        (lambda a: a.split(", Signature=")[0], "requires 'Signature' parameter"),
        (lambda a: a.replace("SignedHeaders=", "Signed="), "requires 'SignedHeaders' parameter"),
        (lambda a: a.replace("Credential=", "Cred="), "requires 'Credential' parameter"),
        (lambda a: "AWS4-HMAC-SHA256", "requires 'Credential' parameter"),
        (lambda a: a.replace("/us-east-1/rekognition", ""), "Credential is malformed"),
        (lambda a: a.replace("/aws4_request", "/aws4_request/x"), "Credential is malformed"),
    ],
)
def test_a_malformed_authorization_header_is_incomplete(
    keys: KeyService, alice: tuple[str, str], edit: Callable[[str], str], message: str
) -> None:
    with pytest.raises(IncompleteSignatureError, match=message):
        verify(_edit_authorization(sign(*alice), edit), keys.credentials)


def test_a_missing_or_malformed_amz_date_is_incomplete(
    keys: KeyService, alice: tuple[str, str]
) -> None:
    wire = sign(*alice)
    with pytest.raises(IncompleteSignatureError, match="X-Amz-Date"):
        verify(wire.without_header("X-Amz-Date"), keys.credentials)
    with pytest.raises(IncompleteSignatureError, match="X-Amz-Date"):
        verify(wire.with_header("X-Amz-Date", "2026-11-26T10:00:00Z"), keys.credentials)


def test_two_authorization_headers_are_incomplete(keys: KeyService, alice: tuple[str, str]) -> None:
    wire = sign(*alice)
    doubled = replace(
        wire, headers=[*wire.headers, ("authorization", wire.header("Authorization"))]
    )
    with pytest.raises(IncompleteSignatureError, match="more than one"):
        verify(doubled, keys.credentials)


def test_an_unknown_key_is_unrecognized(keys: KeyService) -> None:
    wire = sign("FLAKAAAAAAAAAAAAAAAA", "x" * 40)
    with pytest.raises(UnrecognizedClientError) as caught:
        verify(wire, keys.credentials)
    assert caught.value.message == "The security token included in the request is invalid."


def test_a_revoked_key_is_unrecognized(keys: KeyService, alice: tuple[str, str]) -> None:
    wire = sign(*alice)
    keys.revoke(alice[0])
    with pytest.raises(UnrecognizedClientError):
        verify(wire, keys.credentials)


def test_a_wrong_secret_does_not_match(keys: KeyService, alice: tuple[str, str]) -> None:
    with pytest.raises(InvalidSignatureError) as caught:
        wrong = alice[1][:-1] + ("B" if alice[1].endswith("A") else "A")  # always differs
        verify(sign(alice[0], wrong), keys.credentials)
    assert caught.value.message == MISMATCH_MESSAGE


def test_a_body_swapped_after_signing_does_not_match(
    keys: KeyService, alice: tuple[str, str]
) -> None:
    wire = replace(sign(*alice), body=b'{"MaxResults": 11}')
    with pytest.raises(InvalidSignatureError, match="does not match the signature you provided"):
        verify(wire, keys.credentials)


def test_a_target_changed_after_signing_does_not_match(
    keys: KeyService, alice: tuple[str, str]
) -> None:
    wire = sign(*alice).with_header("X-Amz-Target", "RekognitionService.DeleteCollection")
    with pytest.raises(InvalidSignatureError, match="does not match the signature you provided"):
        verify(wire, keys.credentials)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda w: replace(w, path="/other"),
        lambda w: replace(w, method="PUT"),
        lambda w: replace(w, query_string="a=1"),
        lambda w: w.with_header("Host", "evil.example:8080"),
        lambda w: _edit_authorization(w, lambda a: a[:-1] + ("0" if a[-1] != "0" else "1")),
    ],
)
def test_any_other_tampering_does_not_match(
    keys: KeyService, alice: tuple[str, str], tamper: Callable[[Wire], Wire]
) -> None:
    with pytest.raises(InvalidSignatureError, match="does not match"):
        verify(tamper(sign(*alice)), keys.credentials)


def test_a_signed_header_that_did_not_arrive_is_invalid(
    keys: KeyService, alice: tuple[str, str]
) -> None:
    wire = sign(*alice).without_header("Content-Type")
    with pytest.raises(InvalidSignatureError, match="'content-type' is not present"):
        verify(wire, keys.credentials)


def test_host_must_be_signed(keys: KeyService, alice: tuple[str, str]) -> None:
    wire = _edit_authorization(sign(*alice), lambda a: a.replace("host;", ""))
    with pytest.raises(InvalidSignatureError, match="'Host' must be a 'SignedHeader'"):
        verify(wire, keys.credentials)


def test_a_wrong_region_scope_is_invalid(keys: KeyService, alice: tuple[str, str]) -> None:
    with pytest.raises(InvalidSignatureError) as caught:
        verify(sign(*alice, region="eu-west-1"), keys.credentials)
    assert caught.value.message == (
        "Credential should be scoped to a valid region, not 'eu-west-1'."
    )


def test_a_wrong_service_scope_is_invalid(keys: KeyService, alice: tuple[str, str]) -> None:
    with pytest.raises(InvalidSignatureError, match="scoped to correct service: 'rekognition'"):
        verify(sign(*alice, service="comprehend"), keys.credentials)


def test_a_wrong_terminator_or_scope_date_is_invalid(
    keys: KeyService, alice: tuple[str, str]
) -> None:
    wire = sign(*alice)
    with pytest.raises(InvalidSignatureError, match="valid terminator: 'aws4_request'"):
        verify(
            _edit_authorization(wire, lambda a: a.replace("aws4_request", "aws5_request")),
            keys.credentials,
        )
    day_before = wire.signed_at - timedelta(days=1)
    shifted = wire.with_header("X-Amz-Date", day_before.strftime(AMZ_DATE_FORMAT))
    with pytest.raises(InvalidSignatureError, match="Date in Credential scope does not match"):
        verify(shifted, keys.credentials, now=day_before)


@pytest.mark.parametrize(
    ("seconds", "message"),
    [(360, "Signature expired"), (-360, "Signature not yet current")],
)
def test_clock_skew_beyond_the_limit_is_invalid(
    keys: KeyService, alice: tuple[str, str], seconds: int, message: str
) -> None:
    wire = sign(*alice)
    with pytest.raises(InvalidSignatureError, match=message):
        verify(wire, keys.credentials, now=wire.signed_at + timedelta(seconds=seconds))


def test_skew_messages_use_aws_wording(
    keys: KeyService, alice: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore's clock pinned to 10:00; the server's clock says 10:30, then 09:30."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: datetime(2026, 11, 26, 10))
    wire = sign(*alice)
    with pytest.raises(InvalidSignatureError) as late:
        verify(wire, keys.credentials, now=datetime(2026, 11, 26, 10, 30, tzinfo=UTC))
    assert late.value.message == (
        "Signature expired: 20261126T100000Z is now earlier than 20261126T102500Z "
        "(20261126T103000Z - 5 min.)"
    )
    with pytest.raises(InvalidSignatureError) as early:
        verify(wire, keys.credentials, now=datetime(2026, 11, 26, 9, 30))  # naive means UTC
    assert early.value.message == (
        "Signature not yet current: 20261126T100000Z is still later than 20261126T093500Z "
        "(20261126T093000Z + 5 min.)"
    )


def test_a_content_sha256_that_does_not_match_the_body_is_invalid(
    keys: KeyService, alice: tuple[str, str]
) -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(InvalidSignatureError, match="x-amz-content-sha256"):
        verify(sign(*alice, extra=[("X-Amz-Content-Sha256", wrong)]), keys.credentials)
    unsigned = sign(*alice, extra=[("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")])
    with pytest.raises(InvalidSignatureError, match="x-amz-content-sha256"):
        verify(unsigned, keys.credentials)


def test_every_failure_is_an_auth_error() -> None:
    for cls in (
        MissingAuthenticationTokenError,
        IncompleteSignatureError,
        UnrecognizedClientError,
        InvalidSignatureError,
    ):
        assert issubclass(cls, AuthError)


# -- AWS's published signature test suite (aws-sig-v4-test-suite, 2015-08-30) --------------------
_EXAMPLE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
_EXAMPLE = Principal("example", ("audit",), "AKIDEXAMPLE")


@pytest.mark.parametrize(
    ("name", "method", "path", "query", "signature"),
    [
        ("get-vanilla", "GET", "/", "",
         "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("get-vanilla-query-order-key-case", "GET", "/", "Param2=value2&Param1=value1",
         "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
        ("post-vanilla", "POST", "/", "",
         "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
        ("get-utf8", "GET", "/ሴ", "",
         "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
    ],
)  # fmt: skip
def test_aws_published_vectors(
    name: str, method: str, path: str, query: str, signature: str
) -> None:
    headers = {
        "Host": "example.amazonaws.com",
        "X-Amz-Date": "20150830T123600Z",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
        f"aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}",
    }

    def credentials(key_id: str) -> tuple[Principal, str]:
        assert key_id == "AKIDEXAMPLE"
        return _EXAMPLE, _EXAMPLE_SECRET

    principal = verify_sigv4(
        method=method,
        path=path,
        query_string=query,
        headers=headers,
        body=b"",
        credentials=credentials,
        region="us-east-1",
        service="service",
        now=datetime(2015, 8, 30, 12, 36, tzinfo=UTC),
    )
    assert principal == _EXAMPLE, name


# -- what the signature must cover, and replays ----------------------------------------------
REKOGNITION_SIGNED = ("x-amz-target", "content-type", "x-faceledger-purpose", "x-faceledger-case")


def _unsign(wire: Wire, header: str) -> Wire:
    """``wire`` with ``header`` dropped from its SignedHeaders list (the policy check comes
    before the signature check; the live test signs without the header for real)."""
    return _edit_authorization(
        wire, lambda a: a.replace(f"{header};", "").replace(f";{header}", "")
    )


def test_headers_the_service_records_must_be_signed_when_present(
    keys: KeyService, alice: tuple[str, str]
) -> None:
    signed = sign(*alice, extra=[("X-FaceLedger-Purpose", "p"), ("X-FaceLedger-Case", "c")])
    assert verify_sigv4(
        method=signed.method,
        path=signed.path,
        query_string=signed.query_string,
        headers=signed.headers,
        body=signed.body,
        credentials=keys.credentials,
        region=REGION,
        now=signed.signed_at,
        must_sign_if_present=REKOGNITION_SIGNED,
    ) == Principal("alice", ("search",), alice[0])
    injected = sign(*alice).with_header("X-FaceLedger-Purpose", "injected")
    for wire, name in [
        (injected, "X-Faceledger-Purpose"),
        (sign(*alice).with_header("X-FaceLedger-Case", "C-9"), "X-Faceledger-Case"),
        (_unsign(sign(*alice), "x-amz-target"), "X-Amz-Target"),
        (_unsign(sign(*alice), "content-type"), "Content-Type"),
        (_unsign(sign(*alice), "x-amz-date"), "X-Amz-Date"),
    ]:
        with pytest.raises(InvalidSignatureError, match=f"'{name}' must be a 'SignedHeader'"):
            verify_sigv4(
                method=wire.method,
                path=wire.path,
                query_string=wire.query_string,
                headers=wire.headers,
                body=wire.body,
                credentials=keys.credentials,
                region=REGION,
                now=wire.signed_at,
                must_sign_if_present=REKOGNITION_SIGNED,
            )
    # Without the policy an unsigned extra header is tolerated (AWS's own rule: host only).
    assert verify(injected, keys.credentials).name == "alice"


def test_must_sign_requires_the_header_to_arrive(keys: KeyService, alice: tuple[str, str]) -> None:
    wire = sign(*alice)
    with pytest.raises(IncompleteSignatureError, match="x-faceledger-nonce"):
        verify_sigv4(
            method=wire.method,
            path=wire.path,
            query_string=wire.query_string,
            headers=wire.headers,
            body=wire.body,
            credentials=keys.credentials,
            region=REGION,
            now=wire.signed_at,
            must_sign=("x-faceledger-nonce",),
        )


def test_on_verified_sees_only_signatures_that_hold(
    keys: KeyService, alice: tuple[str, str]
) -> None:
    seen: list[tuple[str, datetime]] = []
    wire = sign(*alice)

    def check(w: Wire) -> Principal:
        return verify_sigv4(
            method=w.method,
            path=w.path,
            query_string=w.query_string,
            headers=w.headers,
            body=w.body,
            credentials=keys.credentials,
            region=REGION,
            now=w.signed_at,
            on_verified=lambda p, s, t: seen.append((s, t)),
        )

    check(wire)
    with pytest.raises(InvalidSignatureError):
        check(replace(wire, body=b"{}"))
    signature = wire.header("Authorization").rpartition("Signature=")[2]
    assert seen == [(signature, wire.signed_at)]

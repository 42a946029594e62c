"""Forged and replayed Rekognition requests: a catalogue shared by the test and the bench.

Each attack starts from a request signed the way boto3 signs (botocore's ``SigV4Auth`` with the
headers boto3 sends, or a request captured from a real boto3 client) and changes it as someone
in the path could: re-send it verbatim, add a purpose or case header the signer never saw,
leave the target or content type out of the signature, swap a signed value, or send it after
its signature expired. ``run_attacks`` sends every one to a live server and reports, per attack,
whether it was refused and with which error; every one must be.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import boto3
import botocore.auth
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

REGION = "us-east-1"
JSON_11 = "application/x-amz-json-1.1"
PURPOSE = "X-FaceLedger-Purpose"
CASE = "X-FaceLedger-Case"
REFUSAL_CODES = frozenset(
    {
        "InvalidSignatureException",
        "IncompleteSignatureException",
        "MissingAuthenticationTokenException",
    }
)


@dataclass(frozen=True)
class Wire:
    """What goes over the wire: the headers in order, and the body."""

    url: str
    headers: list[tuple[str, str]]
    body: bytes

    def send(self) -> httpx.Response:
        return httpx.post(self.url, content=self.body, headers=self.headers, timeout=60)

    def plus(self, name: str, value: str) -> Wire:
        return Wire(self.url, [*self.headers, (name, value)], self.body)

    def replacing(self, name: str, value: str) -> Wire:
        kept = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        return Wire(self.url, [*kept, (name, value)], self.body)


def sign(
    url: str,
    key: tuple[str, str],
    operation: str,
    body: dict[str, Any],
    *,
    signed: dict[str, str] | None = None,
    without: tuple[str, ...] = (),
    at: datetime | None = None,
) -> Wire:
    """A request signed as boto3 signs it (target, content type, ``signed`` extra headers),
    except that the headers named in ``without`` are added only after signing."""
    headers = {"X-Amz-Target": f"RekognitionService.{operation}", "Content-Type": JSON_11}
    headers.update(signed or {})
    late = {name: headers.pop(name) for name in without}
    data = json.dumps(body).encode()
    request = AWSRequest(method="POST", url=url + "/", data=data, headers=headers)
    when = at if at is not None else datetime.now(UTC)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
        SigV4Auth(Credentials(*key), "rekognition", REGION).add_auth(request)
    host = url.removeprefix("http://").removeprefix("https://")
    sent = [("Host", host), *((k, str(v)) for k, v in request.headers.items()), *late.items()]
    return Wire(url + "/", sent, data)


def boto3_client(url: str, key: tuple[str, str], purpose: str | None = None) -> Any:
    client = boto3.client(
        "rekognition",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=key[0],
        aws_secret_access_key=key[1],
        config=Config(retries={"max_attempts": 1}),
    )
    if purpose is not None:

        def add_purpose(request: Any, **_: Any) -> None:
            request.headers[PURPOSE] = purpose
            request.headers[CASE] = "CASE-1"

        client.meta.events.register("before-sign.rekognition.*", add_purpose)
    return client


@contextmanager
def captured(client: Any) -> Iterator[list[Wire]]:
    """Every request ``client`` sends, as it went over the wire (it is still sent)."""
    wires: list[Wire] = []

    def keep(request: Any, **_: Any) -> None:
        host = request.url.split("/")[2]
        headers = [("Host", host)]
        headers += [
            (k, v.decode() if isinstance(v, bytes) else str(v)) for k, v in request.headers.items()
        ]
        body = request.body if isinstance(request.body, bytes) else (request.body or b"")
        wires.append(Wire(request.url, headers, body))

    client.meta.events.register("before-send.rekognition.*", keep)
    try:
        yield wires
    finally:
        client.meta.events.unregister("before-send.rekognition.*", keep)


@dataclass(frozen=True)
class Outcome:
    attack: str
    status: int
    code: str
    message: str

    @property
    def refused(self) -> bool:
        return self.code in REFUSAL_CODES


def run_attacks(
    url: str, officer: tuple[str, str], collection_id: str, probe: bytes
) -> list[Outcome]:
    """Send every forged or replayed request; ``officer`` holds the search role and
    ``collection_id`` requires a purpose and a case reference for searches."""
    import base64

    search = {"CollectionId": collection_id, "Image": {"Bytes": base64.b64encode(probe).decode()}}
    purpose = {PURPOSE: "injected purpose", CASE: "INJECTED-1"}
    attacks: dict[str, Callable[[], Wire]] = {}

    # 1. a real boto3 request, answered, then re-sent byte for byte
    client = boto3_client(url, officer)
    with captured(client) as wires:
        client.list_collections()
    attacks["replay: a boto3 request re-sent verbatim"] = lambda: wires[0]

    # 2. the officer's refused search (no purpose), re-sent with a purpose and case added
    refused = boto3_client(url, officer)
    with captured(refused) as searched, suppress(refused.exceptions.AccessDeniedException):
        refused.search_faces_by_image(CollectionId=collection_id, Image={"Bytes": probe})
    attacks["replay of a refused search with purpose and case injected"] = lambda: (
        searched[0].plus(PURPOSE, purpose[PURPOSE]).plus(CASE, purpose[CASE])
    )

    # 3. fresh signatures that leave out what the server acts on or records
    attacks["injected purpose (unsigned)"] = lambda: sign(
        url, officer, "SearchFacesByImage", search
    ).plus(PURPOSE, purpose[PURPOSE])
    attacks["injected case (unsigned)"] = lambda: sign(
        url, officer, "SearchFacesByImage", search, signed={PURPOSE: "x"}
    ).plus(CASE, purpose[CASE])
    attacks["unsigned target"] = lambda: sign(
        url, officer, "ListCollections", {}, without=("X-Amz-Target",)
    )
    attacks["unsigned content type"] = lambda: sign(
        url, officer, "ListCollections", {}, without=("Content-Type",)
    )

    # 4. signed values changed in transit
    attacks["signed purpose replaced"] = lambda: sign(
        url, officer, "SearchFacesByImage", search, signed={PURPOSE: "p", CASE: "c"}
    ).replacing(PURPOSE, purpose[PURPOSE])
    attacks["second purpose header appended"] = lambda: sign(
        url, officer, "SearchFacesByImage", search, signed={PURPOSE: "p", CASE: "c"}
    ).plus(PURPOSE, purpose[PURPOSE])
    attacks["target swapped"] = lambda: sign(url, officer, "ListCollections", {}).replacing(
        "X-Amz-Target", "RekognitionService.DeleteCollection"
    )
    attacks["body swapped"] = lambda: _with_body(
        sign(url, officer, "ListCollections", {}), b'{"MaxResults": 1}'
    )

    # 5. a signature past the clock-skew window
    attacks["expired signature"] = lambda: sign(
        url, officer, "ListCollections", {}, at=datetime.now(UTC) - timedelta(minutes=20)
    )

    out = []
    for name, build in attacks.items():
        response = build().send()
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        code = str(answer.get("__type", "")) or f"HTTP {response.status_code}"
        out.append(Outcome(name, response.status_code, code, str(answer.get("message", ""))))
    return out


def _with_body(wire: Wire, body: bytes) -> Wire:
    headers = [(k, str(len(body)) if k.lower() == "content-length" else v) for k, v in wire.headers]
    return Wire(wire.url, headers, body)

"""What the Rekognition endpoint checks before it reads a request body.

A SigV4 signature covers the body's hash, so it can only be verified once the body is in.
What the headers alone show is checked first, so that nobody without a key can make the
server read (or drain) megabytes: an ``Authorization`` header must be present and well formed
(``AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…``) and name an active access
key. The full verification (``sigv4.verify_sigv4``) follows once the body has been read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from faceledger.api.rekognition.sigv4 import parse_authorization
from faceledger.domain.errors import IncompleteSignatureError, MissingAuthenticationTokenError
from faceledger.domain.principals import Principal


def check_before_body(
    headers: Mapping[str, str], credentials: Callable[[str], tuple[Principal, str]]
) -> None:
    """Raise an ``AuthError`` unless the headers carry a well-formed SigV4 Authorization
    naming an active key (``credentials(key_id)`` raises ``UnrecognizedClientError``)."""
    values = [v for k, v in headers.items() if k.lower() == "authorization"]
    if not values or not values[-1].strip():
        raise MissingAuthenticationTokenError("Missing Authentication Token")
    if len(values) > 1:
        raise IncompleteSignatureError("The request carries more than one Authorization header.")
    credentials(parse_authorization(values[0]).key_id)

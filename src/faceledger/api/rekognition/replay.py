"""What the shared replay check remembers of a Rekognition request (``services/replays.py``).

boto3 and the AWS CLI sign with one-second resolution and no signed nonce: two identical calls
in the same second carry the same signature and differ only in ``amz-sdk-invocation-id`` and
``amz-sdk-request``, which botocore adds after signing. The key is therefore the signature plus
those two headers: an exact replay is refused and boto3 keeps working; a replay that also
rewrites the unsigned invocation id is not detected (a client that needs that signs a nonce
header of its own, e.g. from a ``before-sign`` hook, and then every signature is unique).
"""

from __future__ import annotations

from collections.abc import Mapping

# Unsigned headers that tell apart two identical SDK calls made in the same second.
SDK_INVOCATION_HEADERS = ("amz-sdk-invocation-id", "amz-sdk-request")


def replay_key(signature: str, headers: Mapping[str, str]) -> str:
    """The key of a verified request: its signature and the SDK's invocation headers."""
    unsigned = "\n".join(headers.get(name, "") for name in SDK_INVOCATION_HEADERS)
    return f"{signature}\n{unsigned}"

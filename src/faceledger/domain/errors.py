"""The FaceLedger error hierarchy.

Every error a user can cause carries the Rekognition error code (``code``) and the HTTP status
that botocore expects for it (``http_status``); adapters serialise them in one place each.
"""

from __future__ import annotations

from typing import ClassVar


class FaceLedgerError(Exception):
    """Base class. ``message`` is safe to show to the caller (no secrets, no paths of ours)."""

    code: ClassVar[str] = "InternalServerError"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameterError(FaceLedgerError):
    """A parameter is out of range or malformed, or the image holds no face where one is needed."""

    code = "InvalidParameterException"
    http_status = 400


class SerializationError(FaceLedgerError):
    """A request body that cannot be deserialised within the limits: nested too deep, or too
    large for a JSON request (AWS's JSON protocols answer ``SerializationException``)."""

    code = "SerializationException"
    http_status = 400


class InvalidImageFormatError(FaceLedgerError):
    """The bytes are not a JPEG or PNG we can decode (empty, truncated, GIF, text…)."""

    code = "InvalidImageFormatException"
    http_status = 400


class ImageTooLargeError(FaceLedgerError):
    """The image exceeds the byte limit (5 MiB) or the pixel limit (decompression bombs)."""

    code = "ImageTooLargeException"
    http_status = 400


class ResourceNotFoundError(FaceLedgerError):
    """A collection, face, user or model pack that does not exist."""

    code = "ResourceNotFoundException"
    http_status = 400


class ModelPackError(FaceLedgerError):
    """A model pack is missing, malformed, or a file fails its SHA-256 check."""

    code = "ModelPackError"
    http_status = 500


class LicenceNotAcceptedError(ModelPackError):
    """A pack whose licence forbids commercial use was requested without the operator's consent."""

    code = "LicenceNotAcceptedError"
    http_status = 403


class ResourceAlreadyExistsError(FaceLedgerError):
    """A collection or user id that is already taken."""

    code = "ResourceAlreadyExistsException"
    http_status = 400


class InvalidPaginationTokenError(FaceLedgerError):
    """A NextToken that this installation did not issue for this listing."""

    code = "InvalidPaginationTokenException"
    http_status = 400


class UserAlreadyExistsError(ResourceAlreadyExistsError):
    """CreateUser of a UserId that exists (Rekognition answers ConflictException)."""

    code = "ConflictException"
    http_status = 400


class ServiceQuotaExceededError(FaceLedgerError):
    """A user would hold more than ``MAX_FACES_PER_USER`` faces."""

    code = "ServiceQuotaExceededException"
    http_status = 400


class IdempotentParameterMismatchError(FaceLedgerError):
    """A ClientRequestToken reused with different parameters."""

    code = "IdempotentParameterMismatchException"
    http_status = 400


class InvalidS3ObjectError(FaceLedgerError):
    """An ``Image.S3Object`` that cannot be read (no such bucket or key, no S3 configured)."""

    code = "InvalidS3ObjectException"
    http_status = 400


# -- authentication and authorisation (codes botocore knows from AWS's JSON services) --------
class AuthError(FaceLedgerError):
    """Base of the authentication errors: the request is not from a known, valid key."""

    code = "UnrecognizedClientException"
    http_status = 400


class MissingAuthenticationTokenError(AuthError):
    """No ``Authorization`` header (or bearer token) at all."""

    code = "MissingAuthenticationTokenException"


class IncompleteSignatureError(AuthError):
    """An ``Authorization`` header that is not a well-formed AWS4-HMAC-SHA256 signature."""

    code = "IncompleteSignatureException"


class UnrecognizedClientError(AuthError):
    """An access key id that does not exist or was revoked."""

    code = "UnrecognizedClientException"


class InvalidSignatureError(AuthError):
    """A signature that does not match, a wrong credential scope, or a clock skew > 5 min."""

    code = "InvalidSignatureException"


class ReplayedRequestError(InvalidSignatureError):
    """A verified request received before, by this or another server process (a replay).

    ``first``: the first time this request came back (its refusal is ledgered; later copies
    are refused without a record, so one captured request cannot flood the ledger)."""

    def __init__(self, message: str, *, first: bool) -> None:
        super().__init__(message)
        self.first = first


class AccessDeniedError(FaceLedgerError):
    """A known principal whose roles do not allow the operation."""

    code = "AccessDeniedException"
    http_status = 400


class UnknownOperationError(FaceLedgerError):
    """An ``X-Amz-Target`` naming no Rekognition operation, or one FaceLedger does not serve."""

    code = "UnknownOperationException"
    http_status = 400


class LedgerError(FaceLedgerError):
    """The audit ledger could not be written: the operation fails rather than go unrecorded."""

    code = "InternalServerError"
    http_status = 500


class CropKeyError(FaceLedgerError):
    """The face-crop key file is missing, unreadable or not the key the crops were sealed
    with: crops cannot be kept or shown (nothing is stored unencrypted instead)."""

    code = "InternalServerError"
    http_status = 500


class LedgerTamperedError(LedgerError):
    """The ledger's hash chain, a record's MAC or a signed checkpoint does not verify."""

    code = "LedgerTampered"
    http_status = 500


class ThrottlingError(FaceLedgerError):
    """A key sent more requests than its rate limit allows (boto3 retries these)."""

    code = "ThrottlingException"
    http_status = 400


class ReplayCheckUnavailableError(FaceLedgerError):
    """The shared replay check could not be made (its database did not answer): the request is
    refused, never run unchecked. Rekognition's "temporarily unable to process the request"
    (HTTP 503), which boto3 and the AWS CLI retry."""

    code = "ThrottlingException"
    http_status = 503


class ResourceInUseError(FaceLedgerError):
    """The resource exists or is busy (a stream processor's name taken, or it is running)."""

    code = "ResourceInUseException"
    http_status = 400


class VideoTooLargeError(FaceLedgerError):
    """A stored video longer or bigger than the installation accepts."""

    code = "VideoTooLargeException"
    http_status = 400


class NotificationKeyError(FaceLedgerError):
    """The key signing completion notifications is unreadable, the wrong size, or inside the
    data folder: notifications are not sent unsigned instead."""

    code = "InternalServerError"
    http_status = 500

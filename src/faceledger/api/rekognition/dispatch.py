"""The Rekognition dispatch table: the ``Context`` a handler receives, the ``@operation`` mark
and ``table``, which builds the name → handler map from the handler modules.

A handler module (``operations.py``, ``labels.py``, ``video.py``) marks each handler with
``@operation``; the router names those modules and builds its table once with
``table(operations, labels, video)``. Nothing is registered as a side effect of an import, so
the table never depends on which module was imported first. To add an operation: write the
handler in the module of its kind, mark it, and (for a new module) add the module to the
router's ``table(...)`` call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, ModuleType
from typing import Any

from faceledger.api.rekognition import shapes
from faceledger.config import Settings
from faceledger.domain.audit import Caller
from faceledger.domain.errors import FaceLedgerError, InvalidParameterError, ResourceNotFoundError
from faceledger.domain.faces import Image
from faceledger.domain.scale import SearchScale
from faceledger.inference.imaging import decode_image
from faceledger.services.gateway import Gateway

# The effective match threshold after the collection's floor (Rekognition has no field for it).
THRESHOLD_HEADER = "X-FaceLedger-Effective-Threshold"
# The lead a search with candidates made (docs/REVIEW.md); no JSON member, so AWS clients are
# unchanged.
LEAD_HEADER = "X-FaceLedger-Lead-Id"


@dataclass(frozen=True)
class Context:
    """What a handler may use: the accountable service, the settings and who is asking."""

    settings: Settings
    gate: Gateway
    caller: Caller
    # The operation and the collection the request names (for the records of refusals here).
    operation: str = ""
    collection_id: str | None = None
    # Extra response headers a handler sets (the effective, floored match threshold).
    headers: dict[str, str] = field(default_factory=dict)

    def effective_threshold(self, value: float) -> None:
        self.headers[THRESHOLD_HEADER] = f"{value:g}"

    def lead(self, lead_id: str | None) -> None:
        """The lead a search made (none when it found no candidate)."""
        if lead_id is not None:
            self.headers[LEAD_HEADER] = lead_id

    def refuse(self, exc: FaceLedgerError) -> FaceLedgerError:
        """Ledger a refusal made here, before the operation's verb runs; returns ``exc``."""
        self.gate.record_refusal(
            self.caller, self.operation, self.collection_id, exc.code, exc.message
        )
        return exc

    def search_scale(self, scale: SearchScale | None) -> None:
        """What a candidate means at this collection's size (x-faceledger-fpir, …)."""
        if scale is not None:
            self.headers.update(scale.headers())

    def image(self, image: dict[str, Any], name: str = "Image") -> bytes | Image:
        """An ``Image``: inline ``Bytes`` (decoded by the service, ≤ ``max_image_bytes``) or an
        ``S3Object``, decoded here with its own limit (``max_s3_image_bytes``, Rekognition's
        15 MiB); exactly one of the two."""
        has_bytes, has_object = "Bytes" in image, "S3Object" in image
        if has_bytes == has_object:
            raise self.refuse(
                InvalidParameterError(f"{name} must have exactly one of Bytes and S3Object")
            )
        if has_bytes:
            data: bytes = image["Bytes"]
            return data
        obj = image["S3Object"]
        if "Bucket" not in obj or "Name" not in obj:
            raise self.refuse(InvalidParameterError(f"{name}.S3Object needs both Bucket and Name"))
        data = self.gate.read_image_object(
            self.caller,
            self.operation,
            obj["Bucket"],
            obj["Name"],
            obj.get("Version"),
            collection_id=self.collection_id,
        )
        try:
            return decode_image(
                data,
                max_bytes=self.settings.max_s3_image_bytes,
                max_decode_bytes=self.settings.max_decode_bytes,
            )
        except FaceLedgerError as exc:
            raise self.refuse(exc) from None

    def arn(self, collection_id: str) -> str:
        return shapes.collection_arn(self.settings.region, self.settings.account_id, collection_id)

    def collection_of_arn(self, arn: str) -> str:
        """The CollectionId an ARN of this installation names."""
        prefix = f"arn:aws:rekognition:{self.settings.region}:{self.settings.account_id}:"
        kind, _, collection_id = arn.removeprefix(prefix).partition("/")
        if not arn.startswith(prefix) or kind != "collection" or not collection_id:
            raise self.refuse(
                ResourceNotFoundError(
                    f"{arn!r} is not a collection ARN of this installation "
                    f"(expected {prefix}collection/<CollectionId>)"
                )
            )
        return collection_id


Handler = Callable[[Context, dict[str, Any]], dict[str, Any]]

# The attribute ``@operation`` sets on a handler: its Rekognition operation name.
OPERATION_ATTRIBUTE = "rekognition_operation"


def operation_name(func: Callable[..., Any]) -> str:
    """A handler's Rekognition name from its Python name (``create_collection`` →
    CreateCollection)."""
    return "".join(part.title() for part in func.__name__.split("_"))


def operation(func: Handler) -> Handler:
    """Mark ``func`` as the handler of the operation its name spells (``operation_name``);
    ``table`` collects it. The function itself is returned unchanged."""
    setattr(func, OPERATION_ATTRIBUTE, operation_name(func))
    return func


def table(*modules: ModuleType) -> Mapping[str, Handler]:
    """The read-only map from operation name to handler of every ``@operation`` defined in
    ``modules`` (a handler imported from another module is not counted twice). Two handlers
    with the same name are a programming error."""
    found: dict[str, Handler] = {}
    for module in modules:
        for value in vars(module).values():
            name = getattr(value, OPERATION_ATTRIBUTE, None)
            if name is None or getattr(value, "__module__", None) != module.__name__:
                continue
            if name in found:
                raise ValueError(f"two handlers for {name}: {module.__name__} and another module")
            found[name] = value
    return MappingProxyType(found)

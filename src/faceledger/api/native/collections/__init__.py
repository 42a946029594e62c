"""``/v1/collections/...``: collections, policies, faces and users, thin adapters over the
gateway.

Each route calls one ``Gateway`` verb (``app.state.gateway``) in a worker thread
(``run_blocking``) with the request's ``Caller`` (see ``auth``), and shapes its domain result
into a pydantic model, so the OpenAPI spec at ``/docs`` says exactly what comes back. The
gateway checks that the key's roles allow the Rekognition operation (IndexFaces, …), applies
the collection's policy to searches (purpose and case reference required, threshold floor)
and writes the call, refused or not, to the audit ledger; it checks the roles before it
decodes an upload.

One module per job: ``params`` (reusable ``Annotated`` route parameters), ``schemas``
(request and response models), ``mappers`` (domain results → models), and the routes of each
resource (``collection_routes``, ``face_routes``, ``user_routes``, ``policy_routes``),
joined here in the order the spec lists them.

Units and conventions:

* ``bbox_px`` — pixels (left, top, width, height) of the uploaded image after EXIF orientation,
  given wherever the image is at hand (IndexFaces, search by image).
* ``bounding_box_ratio`` — a stored face's box as ratios (0–1) of its image's width and height
  (Rekognition's ``BoundingBox``).
* ``similarity`` — the model pack's calibrated 0–100 Similarity; ``confidence`` — detector
  confidence 0–100; ``created_at`` — epoch seconds.
* ``threshold`` in a search answer is the effective one: the ``requested_threshold`` raised to
  the collection's ``threshold_floor`` (its policy, or the installation's default).
* Identifiers (``collection_id``, ``user_id``, ``face_id``, ``external_image_id``) carry their
  pattern in the spec; the services check them and answer InvalidParameterException.
* A resource that does not exist answers 400 ResourceNotFoundException (Rekognition's code);
  404 means "no such route".
"""

from __future__ import annotations

from fastapi import APIRouter

from faceledger.api.native.collections import (
    collection_routes,
    face_routes,
    policy_routes,
    user_routes,
)

# The routes themselves (not included routers), so that ``router.routes`` lists every route
# with its methods, as the one-door test walks them; policies last, after what they govern.
router = APIRouter()
router.routes.extend(collection_routes.router.routes)
router.routes.extend(face_routes.router.routes)
router.routes.extend(user_routes.router.routes)
router.routes.extend(policy_routes.router.routes)

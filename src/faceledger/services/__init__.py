"""Layer 7: the verbs users call, wired from ``Settings`` (the composition root).

Adapters (``api``, ``cli``) call these verbs and never build inference objects themselves.
"""

from faceledger.services.faces import FaceService

__all__ = ["FaceService"]

"""The Rekognition JSON 1.1 API: ``POST /`` with ``X-Amz-Target: RekognitionService.<Op>``.

SigV4 verification (``sigv4``), request validation against botocore's own service model
(``protocol``), the dispatch table of operations (``operations``) and the shaping of domain
results into Rekognition JSON (``shapes``).
"""

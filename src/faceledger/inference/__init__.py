"""Layer 2: model packs, runtimes, detection, alignment, quality, embedding, calibration.

Nothing loads at import; a pack loads once, lazily, the first time an engine needs it.
"""

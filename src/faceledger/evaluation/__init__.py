"""Accuracy evaluation (LFW protocol) and calibration fitting. Uses the inference layer only."""

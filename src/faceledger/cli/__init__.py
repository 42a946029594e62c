"""The ``faceledger`` command line (Typer): a thin adapter over ``faceledger.services``."""

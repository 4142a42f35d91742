"""The model zoo and the battery that runs every zoo model through every surface (``test_battery.py``: API, CLI,
analyses, report, explorer, Beam; ``test_artefacts.py``: SavedModel + serve, TFLite + edge)."""

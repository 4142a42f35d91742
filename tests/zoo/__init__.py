"""The model zoo and the battery that runs every zoo model through every surface (``test_battery.py``)."""

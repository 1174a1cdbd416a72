"""The entrance service (``serve.py``, ``mask-serve``): a live page, an HTTP API, MQTT events and a fleet dashboard
over the tracked pipeline.

``server`` puts it together; ``camera`` runs one camera through the frame seam; ``app`` is the HTTP side;
``store`` keeps events (SQLite), ``mqtt`` and ``outbox`` publish them, ``subscriber`` feeds a dashboard; ``records``
defines the payloads (JSON Schemas in docs/schemas/).
"""

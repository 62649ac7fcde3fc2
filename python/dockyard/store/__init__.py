"""The local image store: SQLite metadata (`db.py`), content-addressed blobs
(`blobs.py`), layers on a storage driver (`layers.py`) and images with their
tags (`images.py`)."""

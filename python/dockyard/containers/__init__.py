"""Containers: their records (`model.py`), the runtime spec built from Docker's
Config and HostConfig (`spec.py`), json-file logs (`logs.py`), the shim's
attach protocol (`attach.py`) and the lifecycle (`service.py`)."""

"""The `dockyard` client: docker's commands over the Engine API."""

"""The Dockyard daemon: the Docker Engine API (v1.41) over aiohttp."""

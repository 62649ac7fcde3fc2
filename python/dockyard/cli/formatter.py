"""Columns that more than one command group prints, as docker's formatter
package writes them: image IDs and the image table's headers, creation
times, binary byte sizes (the decimal ones are `dockyard.units`)."""

from __future__ import annotations

IMAGE_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG", "ID": "IMAGE ID",
                 "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                 "Digest": "DIGEST", "Containers": "CONTAINERS", "SharedSize": "SHARED SIZE",
                 "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE"}

BINARY_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]


def short_id(i: str, no_trunc: bool) -> str:
    """An image ID without its algorithm, cut to 12 characters unless --no-trunc."""
    if no_trunc:
        return i
    return i.split(":", 1)[-1][:12]


def created_at(unix: float) -> str:
    """The CreatedAt column: a local time with its offset and zone."""
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(unix))


def bytes_size(size: float) -> str:
    """units.BytesSize: binary units, 4 significant digits."""
    i = 0
    while size >= 1024.0 and i < len(BINARY_UNITS) - 1:
        size /= 1024.0
        i += 1
    return f"{'%.4g' % size}{BINARY_UNITS[i]}"

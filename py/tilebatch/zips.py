"""Zip members written the same way every time, so that the same content gives the same bytes.

RAWR tiles and metatiles are both zips; each member gets a fixed timestamp
(no build time in the bytes), deflate and mode 0644.
"""

import zipfile

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def member(name: str, level: int | None = None) -> zipfile.ZipInfo:
    """A deflated member `name` with a fixed timestamp and mode 0644; deflated at zlib's `level` (1..9),
    zlib's default (6) when None."""
    info = zipfile.ZipInfo(name, _EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    # What ZipFile.writestr(compresslevel=) sets: before Python 3.13 a member's level has no public name.
    info._compresslevel = level
    return info

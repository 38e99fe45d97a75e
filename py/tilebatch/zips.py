"""Zip members written the same way every time, so that the same content gives the same bytes.

RAWR tiles and metatiles are both zips; each member gets a fixed timestamp
(no build time in the bytes) and mode 0644, and is deflated or stored.
"""

import zipfile

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def member(name: str, stored: bool = False) -> zipfile.ZipInfo:
    """A member `name` with a fixed timestamp and mode 0644, deflated; or `stored` as it is (what it holds is
    compressed already)."""
    info = zipfile.ZipInfo(name, _EPOCH)
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info

"""tilebatch: OpenStreetMap vector tiles from PostGIS, on one machine or on AWS Batch."""

__version__ = "0.1.0"

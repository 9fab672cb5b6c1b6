"""vxcache: an offline-capable sync cache and SQL query API for a deployment node."""

__version__ = "0.1.0"

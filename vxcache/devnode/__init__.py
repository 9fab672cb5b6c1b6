"""
The devnode: a faithful, seeded stand-in for the deployment node.

It serves the node's five session routes (list, show, pull, apply, delete) over
FastAPI with a bearer token, from seeded data, with switchable faults and admin
routes under `/_admin/` for tests and demos. It imports nothing else from vxcache.

Example:
    >>> from vxcache.devnode import DevnodeConfig, Faults, create_app
    >>> app = create_app(DevnodeConfig(sessions=50, faults=Faults(throttle_count=1)))
    >>> len(app.state.devnode.store)
    50
"""

from vxcache.devnode._config import DevnodeConfig, Faults
from vxcache.devnode.app import create_app, serve

__all__ = ["DevnodeConfig", "Faults", "create_app", "serve"]

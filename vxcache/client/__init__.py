"""
The node client: every HTTP call to the node, its retries and its errors.

    with NodeClient(settings.node) as client:
        records = client.list_sessions()
        pulled = client.pull_session(records[0].session_id)

Only exceptions from :mod:`vxcache.errors` leave this package; httpx stays
inside. The private modules split the work:

- ``_node``: :class:`NodeClient`, one method per node operation;
- ``_http``: one exchange with the node, the retry policy and status mapping;
- ``_failures``: the error, and its one-sentence message, for each failure;
- ``_payload``: JSON decoding and the tolerant reading of answer shapes;
- ``_messages``: the node's own error words, Retry-After and safe URLs.
"""

from vxcache.client._node import NodeClient
from vxcache.client._payload import Artifact, PullResult

__all__ = ["Artifact", "NodeClient", "PullResult"]

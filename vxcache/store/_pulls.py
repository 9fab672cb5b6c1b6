"""Writing pulls: content-addressed blobs, artifacts and Terraform states."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable

from sqlalchemy import Connection, select, update

from vxcache.models import (
    Artifact,
    Blob,
    Pull,
    Session,
    TerraformResource,
    TerraformState,
)
from vxcache.store._base import StoreBase, inserted_id
from vxcache.store._types import PullInput

_BLOBS = Blob.__table__  # type: ignore[attr-defined]
_SESSIONS = Session.__table__  # type: ignore[attr-defined]


def _store_blobs(connection: Connection, contents: Iterable[bytes]) -> dict[bytes, str]:
    """Store each distinct content once; return its sha256 by content."""
    digests = {content: hashlib.sha256(content).hexdigest() for content in contents}
    if not digests:
        return digests
    known = set(
        connection.execute(
            select(_BLOBS.c.sha256).where(_BLOBS.c.sha256.in_(list(digests.values())))
        ).scalars()
    )
    missing = {
        digest: content for content, digest in digests.items() if digest not in known
    }
    if missing:
        connection.execute(
            _BLOBS.insert(),
            [
                {
                    "sha256": digest,
                    "size_bytes": len(content),
                    "compression": "zlib",
                    "data": zlib.compress(content, 6),
                }
                for digest, content in missing.items()
            ],
        )
    return digests


class PullMixin(StoreBase):
    """Pulls of sessions and what they carried."""

    def sessions_wanting_pull(self) -> list[str]:
        """Return sessions whose artifacts should be pulled, newest first."""
        query = (
            select(_SESSIONS.c.session_id)
            .where(_SESSIONS.c.pull_wanted)
            .where(_SESSIONS.c.presence != "gone")
            .order_by(_SESSIONS.c.started_at.desc())
        )
        with self.reading() as connection:
            return list(connection.execute(query).scalars())

    def save_pull(self, pull: PullInput, *, sync_id: int | None) -> int:
        """Store one pull in one transaction; return its id."""
        contents = [pull.body, *(artifact.content for artifact in pull.artifacts)]
        if pull.state is not None:
            contents.append(pull.state.document)

        with self.transaction() as (connection, seq):
            digests = _store_blobs(connection, contents)
            result = connection.execute(
                Pull.__table__.insert().values(  # type: ignore[attr-defined]
                    session_id=pull.session_id,
                    sync_id=sync_id,
                    pulled_at=pull.pulled_at,
                    size_bytes=pull.size_bytes,
                    sha256=pull.sha256,
                    body_sha256=digests[pull.body],
                    redacted_values=pull.redacted_values,
                    change_seq=seq,
                )
            )
            pull_id = inserted_id(result)
            self._insert_pull_children(
                connection, pull, pull_id=pull_id, digests=digests, seq=seq
            )
            connection.execute(
                update(_SESSIONS)
                .where(_SESSIONS.c.session_id == pull.session_id)
                .values(pull_wanted=False, last_pull_id=pull_id, change_seq=seq)
            )

        return pull_id

    def skip_pull(self, session_id: str) -> None:
        """Stop asking for a pull the node cannot give (the session is unknown to it)."""
        with self.transaction() as (connection, seq):
            connection.execute(
                update(_SESSIONS)
                .where(_SESSIONS.c.session_id == session_id)
                .values(pull_wanted=False, change_seq=seq)
            )

    def _insert_pull_children(
        self,
        connection: Connection,
        pull: PullInput,
        *,
        pull_id: int,
        digests: dict[bytes, str],
        seq: int,
    ) -> None:
        base = {"pull_id": pull_id, "session_id": pull.session_id, "change_seq": seq}
        if pull.artifacts:
            connection.execute(
                Artifact.__table__.insert(),  # type: ignore[attr-defined]
                [
                    {
                        **base,
                        "name": artifact.name,
                        "kind": artifact.kind,
                        "content_type": artifact.content_type,
                        "size_bytes": len(artifact.content),
                        "sha256": digests[artifact.content],
                        "pulled_at": pull.pulled_at,
                    }
                    for artifact in pull.artifacts
                ],
            )
        state = pull.state
        if state is None:
            return
        connection.execute(
            TerraformState.__table__.insert().values(  # type: ignore[attr-defined]
                **base,
                pulled_at=pull.pulled_at,
                format_version=state.format_version,
                terraform_version=state.terraform_version,
                serial=state.serial,
                lineage=state.lineage,
                resource_count=len(state.resources),
                state_sha256=digests[state.document],
            )
        )
        if state.resources:
            connection.execute(
                TerraformResource.__table__.insert(),  # type: ignore[attr-defined]
                [
                    {
                        **base,
                        "address": resource.address,
                        "mode": resource.mode,
                        "type": resource.type,
                        "name": resource.name,
                        "provider": resource.provider,
                        "module": resource.module,
                        "instance_count": resource.instance_count,
                    }
                    for resource in state.resources
                ],
            )

    def blob(self, sha256: str) -> bytes | None:
        """Return stored content by its sha256."""
        with self.reading() as connection:
            row = connection.execute(
                select(_BLOBS.c.data, _BLOBS.c.compression).where(
                    _BLOBS.c.sha256 == sha256
                )
            ).first()
        if row is None:
            return None
        return zlib.decompress(row[0]) if row[1] == "zlib" else bytes(row[0])

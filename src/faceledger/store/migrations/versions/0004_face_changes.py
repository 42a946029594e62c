"""The change log of each collection's faces, replayed by the API processes' in-memory indexes.

Revision ID: 0004_face_changes
Revises: 0003_video
Create Date: 2026-11-26

Each API process searches a collection with its own in-memory vector index (the embedded
backend's ``CollectionIndexes``), a cache over the faces in PostgreSQL: before every search it
replays the collection's changes since the sequence number its index reflects, so a face
enrolled or deleted through any process is found or gone at once in every other.

``collections.change_seq`` is the collection's last sequence number. A write that adds or
deletes faces increments it (``UPDATE … RETURNING``, which locks the collection row until the
transaction commits) and logs one ``face_changes`` row per face with the numbers it got. The
row lock serialises the writers of one collection, so a collection's sequence numbers become
visible in order: a reader never sees number n+1 committed while n is still in flight (a plain
sequence would allow that, and a replica would skip n for ever).

Existing faces are logged as additions, in row order, by this upgrade.
"""

from __future__ import annotations

from alembic import op

revision = "0004_face_changes"
down_revision = "0003_video"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE collections ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE face_changes (
    collection_pk BIGINT NOT NULL REFERENCES collections (collection_pk) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    row_id BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL,
    PRIMARY KEY (collection_pk, seq)
);

INSERT INTO face_changes (collection_pk, seq, row_id, deleted)
SELECT collection_pk, ROW_NUMBER() OVER (PARTITION BY collection_pk ORDER BY row_id), row_id,
       FALSE
FROM faces;

UPDATE collections c SET change_seq = logged.n
FROM (SELECT collection_pk, MAX(seq) AS n FROM face_changes GROUP BY collection_pk) logged
WHERE logged.collection_pk = c.collection_pk;
"""

DOWNGRADE = """
DROP TABLE face_changes;
ALTER TABLE collections DROP COLUMN change_seq;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

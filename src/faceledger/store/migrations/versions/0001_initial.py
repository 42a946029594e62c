"""The initial PostgreSQL schema: collections, faces (pgvector ``halfvec``), users, tags,
policies, ClientRequestTokens, access keys and shared secrets.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-26

``faces`` is partitioned by list on its collection's surrogate key (``collection_pk``): each
collection gets its own partition ``faces_<pk>`` with its own HNSW index ``faces_<pk>_hnsw``
over ``embedding::halfvec(<dim>)`` (the collection's dimension), made by ``PostgresStore`` when
the collection is created and dropped with it. Primary and unique keys all start with
``collection_pk``, the distribution column a Citus cluster would shard faces, users, tags and
tokens on (co-located by collection).
"""

from __future__ import annotations

from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = """
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE collections (
    collection_pk BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    collection_id TEXT NOT NULL UNIQUE,
    face_model_version TEXT NOT NULL,
    embedding_dim INTEGER NOT NULL CHECK (embedding_dim BETWEEN 1 AND 4000),
    created_at DOUBLE PRECISION NOT NULL,
    -- kept by the store in the transactions that add or remove faces and users (a COUNT over
    -- a million-face partition costs ~100 ms; every search describes its collection)
    face_count BIGINT NOT NULL DEFAULT 0 CHECK (face_count >= 0),
    user_count BIGINT NOT NULL DEFAULT 0 CHECK (user_count >= 0)
);

CREATE SEQUENCE faces_row_id_seq AS BIGINT;
CREATE TABLE faces (
    collection_pk BIGINT NOT NULL REFERENCES collections (collection_pk) ON DELETE CASCADE,
    row_id BIGINT NOT NULL DEFAULT nextval('faces_row_id_seq'),
    face_id TEXT NOT NULL,
    image_id TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    external_image_id TEXT,
    bbox_left DOUBLE PRECISION NOT NULL,
    bbox_top DOUBLE PRECISION NOT NULL,
    bbox_width DOUBLE PRECISION NOT NULL,
    bbox_height DOUBLE PRECISION NOT NULL,
    confidence DOUBLE PRECISION NOT NULL,
    user_id TEXT,
    embedding halfvec NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (collection_pk, row_id),
    UNIQUE (collection_pk, face_id)
) PARTITION BY LIST (collection_pk);
ALTER SEQUENCE faces_row_id_seq OWNED BY faces.row_id;
CREATE INDEX faces_by_image ON faces (collection_pk, image_sha256);
CREATE INDEX faces_by_user ON faces (collection_pk, user_id) WHERE user_id IS NOT NULL;
CREATE INDEX faces_by_age ON faces (collection_pk, created_at);

CREATE TABLE users (
    collection_pk BIGINT NOT NULL REFERENCES collections (collection_pk) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (collection_pk, user_id)
);

CREATE TABLE request_tokens (
    collection_pk BIGINT NOT NULL REFERENCES collections (collection_pk) ON DELETE CASCADE,
    operation TEXT NOT NULL,
    token TEXT NOT NULL,
    params TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (collection_pk, operation, token)
);
CREATE INDEX request_tokens_by_age ON request_tokens (created_at);

CREATE TABLE tags (
    collection_pk BIGINT NOT NULL REFERENCES collections (collection_pk) ON DELETE CASCADE,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (collection_pk, key)
);

CREATE TABLE policies (
    collection_pk BIGINT PRIMARY KEY REFERENCES collections (collection_pk) ON DELETE CASCADE,
    policy TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE access_keys (
    key_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    principal TEXT NOT NULL,
    roles JSONB NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION,
    description TEXT NOT NULL DEFAULT '',
    rate_per_second DOUBLE PRECISION,
    burst INTEGER
);
CREATE INDEX access_keys_by_principal ON access_keys (principal);

CREATE TABLE shared_secrets (
    name TEXT PRIMARY KEY,
    secret BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS shared_secrets, access_keys, policies, tags, request_tokens, users,
    faces, collections CASCADE;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)

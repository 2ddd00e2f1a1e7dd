/**
 * Second Brain v3.0's database schema, as its alembic revisions
 * `001_initial_schema` and `002_add_pgvector` (raold/second-brain, tag v3.0.0)
 * create it, written as memshift's own DDL: same tables, columns, types,
 * NULLability, constraint and index names. `alembic_version` records '002',
 * so Second Brain's own `alembic upgrade head` finds the database current.
 *
 * One difference in timing, not in result: 002 creates the ivfflat index on
 * an empty table with lists = 100; memshift creates it after the copy, with
 * lists sized to the row count as pgvector recommends (see ivfflatLists).
 */
import type pg from 'pg';
import { inTransaction } from './databases';

export const ALEMBIC_HEAD = '002';
export const VECTOR_INDEX = 'idx_memories_embedding_vector';
/** sa.String(500) of memories.title. */
export const TITLE_MAX_LENGTH = 500;
/** sa.String(100) of tags.name, sa.String(100) of memories.embedding_model, sa.String(50) of memory_type. */
export const TAG_NAME_MAX_LENGTH = 100;
export const EMBEDDING_MODEL_MAX_LENGTH = 100;
export const MEMORY_TYPE_MAX_LENGTH = 50;
export const SOURCE_URL_MAX_LENGTH = 1000;

/** Every table the two revisions create, in the order a drop must take (dependents first). */
export const V3_TABLES = ['session_memories', 'memory_tags', 'memory_links', 'snapshots', 'events', 'tags', 'sessions', 'memories', 'users', 'alembic_version'];

/** Revision 001 and 002 without the vector index; one transaction. */
export function v3SchemaDdl(dimensions: number): string {
  return `
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE alembic_version (
  version_num VARCHAR(32) NOT NULL,
  CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

CREATE TABLE users (
  id UUID NOT NULL,
  email VARCHAR(255) NOT NULL,
  username VARCHAR(100) NOT NULL,
  full_name VARCHAR(255),
  avatar_url VARCHAR(500),
  bio TEXT,
  password_hash VARCHAR(255) NOT NULL,
  role VARCHAR(50) NOT NULL,
  is_active BOOLEAN NOT NULL,
  is_verified BOOLEAN NOT NULL,
  preferences JSON NOT NULL,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL,
  updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
  last_login_at TIMESTAMP WITH TIME ZONE,
  memory_limit INTEGER NOT NULL,
  storage_limit_mb INTEGER NOT NULL,
  api_rate_limit INTEGER NOT NULL,
  PRIMARY KEY (id),
  UNIQUE (email),
  UNIQUE (username)
);
CREATE INDEX idx_users_role_active ON users (role, is_active);
CREATE UNIQUE INDEX ix_users_email ON users (email);
CREATE UNIQUE INDEX ix_users_username ON users (username);

CREATE TABLE memories (
  id UUID NOT NULL,
  user_id UUID NOT NULL,
  title VARCHAR(500) NOT NULL,
  content TEXT NOT NULL,
  memory_type VARCHAR(50) NOT NULL,
  status VARCHAR(50) NOT NULL,
  importance_score FLOAT NOT NULL,
  confidence_score FLOAT NOT NULL,
  source_url VARCHAR(1000),
  embedding JSON,
  embedding_model VARCHAR(100),
  metadata JSON NOT NULL,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL,
  updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
  accessed_at TIMESTAMP WITH TIME ZONE NOT NULL,
  retention_strength FLOAT NOT NULL,
  retrieval_count INTEGER NOT NULL,
  PRIMARY KEY (id),
  FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX idx_memories_created ON memories (created_at);
CREATE INDEX idx_memories_user_status ON memories (user_id, status);
CREATE INDEX idx_memories_user_type ON memories (user_id, memory_type);

CREATE TABLE sessions (
  id UUID NOT NULL,
  user_id UUID NOT NULL,
  title VARCHAR(500) NOT NULL,
  description TEXT,
  messages JSON NOT NULL,
  is_active BOOLEAN NOT NULL,
  context JSON NOT NULL,
  tags JSON NOT NULL,
  metadata JSON NOT NULL,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL,
  updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
  last_activity_at TIMESTAMP WITH TIME ZONE NOT NULL,
  PRIMARY KEY (id),
  FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX idx_sessions_last_activity ON sessions (last_activity_at);
CREATE INDEX idx_sessions_user_active ON sessions (user_id, is_active);

CREATE TABLE tags (
  id UUID NOT NULL,
  name VARCHAR(100) NOT NULL,
  user_id UUID NOT NULL,
  parent_id UUID,
  color VARCHAR(7),
  icon VARCHAR(100),
  description TEXT,
  usage_count INTEGER NOT NULL,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL,
  updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
  last_used_at TIMESTAMP WITH TIME ZONE,
  PRIMARY KEY (id),
  FOREIGN KEY (parent_id) REFERENCES tags (id) ON DELETE CASCADE,
  FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
  CONSTRAINT uq_user_tag_name UNIQUE (user_id, name)
);
CREATE INDEX idx_tags_user_usage ON tags (user_id, usage_count);

CREATE TABLE events (
  id UUID NOT NULL,
  aggregate_id UUID NOT NULL,
  event_type VARCHAR(100) NOT NULL,
  event_version INTEGER NOT NULL,
  event_data JSON NOT NULL,
  user_id UUID,
  correlation_id UUID,
  causation_id UUID,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL,
  stream_version INTEGER NOT NULL,
  PRIMARY KEY (id),
  CONSTRAINT uq_aggregate_version UNIQUE (aggregate_id, stream_version)
);
CREATE INDEX idx_events_type_created ON events (event_type, created_at);
CREATE INDEX ix_events_aggregate_id ON events (aggregate_id);
CREATE INDEX ix_events_correlation_id ON events (correlation_id);
CREATE INDEX ix_events_created_at ON events (created_at);
CREATE INDEX ix_events_event_type ON events (event_type);

CREATE TABLE snapshots (
  id UUID NOT NULL,
  aggregate_id UUID NOT NULL,
  version INTEGER NOT NULL,
  data JSON NOT NULL,
  created_at TIMESTAMP WITH TIME ZONE NOT NULL,
  PRIMARY KEY (id),
  CONSTRAINT uq_snapshot_version UNIQUE (aggregate_id, version)
);
CREATE INDEX ix_snapshots_aggregate_id ON snapshots (aggregate_id);

CREATE TABLE memory_links (
  from_memory_id UUID NOT NULL,
  to_memory_id UUID NOT NULL,
  link_type VARCHAR(50),
  FOREIGN KEY (from_memory_id) REFERENCES memories (id) ON DELETE CASCADE,
  FOREIGN KEY (to_memory_id) REFERENCES memories (id) ON DELETE CASCADE,
  CONSTRAINT uq_memory_links UNIQUE (from_memory_id, to_memory_id)
);

CREATE TABLE memory_tags (
  memory_id UUID NOT NULL,
  tag_id UUID NOT NULL,
  FOREIGN KEY (memory_id) REFERENCES memories (id) ON DELETE CASCADE,
  FOREIGN KEY (tag_id) REFERENCES tags (id) ON DELETE CASCADE,
  CONSTRAINT uq_memory_tags UNIQUE (memory_id, tag_id)
);

CREATE TABLE session_memories (
  session_id UUID NOT NULL,
  memory_id UUID NOT NULL,
  FOREIGN KEY (memory_id) REFERENCES memories (id) ON DELETE CASCADE,
  FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE,
  CONSTRAINT uq_session_memories UNIQUE (session_id, memory_id)
);

-- 002_add_pgvector
ALTER TABLE memories ADD COLUMN embedding_vector vector(${Math.floor(dimensions)});
ALTER TABLE memories ADD COLUMN attachments JSON DEFAULT '[]' NOT NULL;

INSERT INTO alembic_version (version_num) VALUES ('${ALEMBIC_HEAD}');
`;
}

/**
 * pgvector's advice for ivfflat: rows / 1000 lists up to a million rows,
 * sqrt(rows) beyond (at least 1). Alembic's fixed 100 is the value for 100k rows.
 */
export function ivfflatLists(rows: number): number {
  return Math.max(1, rows <= 1_000_000 ? Math.floor(rows / 1000) : Math.floor(Math.sqrt(rows)));
}

/**
 * pgvector's ivfflat build k-means clusters max(10,000, 50 per list) sample
 * vectors in memory and refuses to start when maintenance_work_mem (64 MB by
 * default) is below that (at 1536 dimensions "memory required is 65 MB" once
 * the 100 lists of 100k memories are built): the build raises it for its own
 * transaction, never lowers it.
 */
export async function createVectorIndex(db: pg.Pool, lists: number, dimensions: number): Promise<void> {
  const neededMb = Math.ceil((Math.max(10_000, lists * 50) * (8 + 4 * dimensions) * 1.1) / 2 ** 20) + 16;
  await inTransaction(db, async (client) => {
    const { rows } = await client.query<{ mb: string }>(`SELECT pg_size_bytes(current_setting('maintenance_work_mem')) / 1048576 AS mb`);
    if (Number(rows[0].mb) < neededMb) await client.query(`SET LOCAL maintenance_work_mem = '${neededMb}MB'`);
    await client.query(vectorIndexDdl(lists));
  });
}

function vectorIndexDdl(lists: number): string {
  return `CREATE INDEX IF NOT EXISTS ${VECTOR_INDEX} ON memories USING ivfflat (embedding_vector vector_cosine_ops) WITH (lists = ${Math.floor(lists)})`;
}

// SQLite schema. Conventions shared with migrations_postgres.cpp, so repositories have one
// code path for both dialects:
//   - ids are UUIDv7 TEXT;
//   - timestamps are TEXT in RFC 3339 UTC with milliseconds ("2026-01-02T03:04:05.678Z"),
//     which sort correctly as text; PostgreSQL returns its TIMESTAMPTZ in the same form;
//   - booleans are INTEGER 0/1 (PostgreSQL BOOLEAN comes back as "1"/"0"); write them as
//     int64 parameters or TRUE/FALSE literals;
//   - JSON documents (params, payload, scopes) are TEXT.
#include "store/migrations.hpp"

namespace chatd::store {

namespace {

constexpr std::string_view kInitialSchema = R"sql(
CREATE TABLE users (
  id            TEXT PRIMARY KEY,
  email         TEXT NOT NULL UNIQUE,
  password_hash TEXT,
  name          TEXT NOT NULL DEFAULT '',
  role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
  is_active     INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
  last_login_at TEXT,
  created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE refresh_tokens (
  id          TEXT PRIMARY KEY,
  user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  family_id   TEXT NOT NULL,
  token_hash  TEXT NOT NULL UNIQUE,
  expires_at  TEXT NOT NULL,
  revoked_at  TEXT,
  replaced_by TEXT,
  created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX refresh_tokens_user_id ON refresh_tokens(user_id);
CREATE INDEX refresh_tokens_family_id ON refresh_tokens(family_id);

CREATE TABLE api_keys (
  id           TEXT PRIMARY KEY,
  user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name         TEXT NOT NULL DEFAULT '',
  key_hash     TEXT NOT NULL UNIQUE,
  prefix       TEXT NOT NULL,
  scopes       TEXT NOT NULL DEFAULT '[]',
  expires_at   TEXT,
  last_used_at TEXT,
  revoked_at   TEXT,
  created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX api_keys_user_id ON api_keys(user_id);

CREATE TABLE conversations (
  id              TEXT PRIMARY KEY,
  user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  title           TEXT NOT NULL DEFAULT '',
  model           TEXT NOT NULL DEFAULT '',
  system_prompt   TEXT,
  params          TEXT NOT NULL DEFAULT '{}',
  pinned          INTEGER NOT NULL DEFAULT 0 CHECK (pinned IN (0, 1)),
  archived        INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
  current_leaf_id TEXT REFERENCES messages(id) ON DELETE SET NULL,
  created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX conversations_user_updated ON conversations(user_id, updated_at DESC);

CREATE TABLE messages (
  id                TEXT PRIMARY KEY,
  conversation_id   TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
  parent_id         TEXT REFERENCES messages(id) ON DELETE CASCADE,
  role              TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
  content           TEXT NOT NULL DEFAULT '',
  status            TEXT NOT NULL DEFAULT 'complete'
                    CHECK (status IN ('streaming', 'complete', 'incomplete', 'cancelled', 'error')),
  model             TEXT,
  prompt_tokens     INTEGER NOT NULL DEFAULT 0,
  completion_tokens INTEGER NOT NULL DEFAULT 0,
  finish_reason     TEXT,
  error             TEXT,
  created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX messages_conversation_created ON messages(conversation_id, created_at DESC);
CREATE INDEX messages_parent_id ON messages(parent_id);

CREATE TABLE knowledge_bases (
  id              TEXT PRIMARY KEY,
  user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name            TEXT NOT NULL,
  description     TEXT NOT NULL DEFAULT '',
  embedding_model TEXT NOT NULL DEFAULT '',
  created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX knowledge_bases_user_id ON knowledge_bases(user_id);

CREATE TABLE documents (
  id                TEXT PRIMARY KEY,
  knowledge_base_id TEXT NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
  user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  filename          TEXT NOT NULL,
  content_type      TEXT NOT NULL DEFAULT '',
  size_bytes        INTEGER NOT NULL DEFAULT 0,
  sha256            TEXT NOT NULL DEFAULT '',
  blob_key          TEXT NOT NULL DEFAULT '',
  status            TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
  error             TEXT,
  chunk_count       INTEGER NOT NULL DEFAULT 0,
  created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX documents_kb_created ON documents(knowledge_base_id, created_at DESC);
CREATE INDEX documents_user_id ON documents(user_id);

-- seq is the integer rowid the FTS5 index refers to; an explicit INTEGER PRIMARY KEY,
-- because VACUUM may renumber an implicit rowid and desynchronise chunks_fts.
CREATE TABLE chunks (
  seq               INTEGER PRIMARY KEY,
  id                TEXT NOT NULL UNIQUE,
  document_id       TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
  knowledge_base_id TEXT NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
  ordinal           INTEGER NOT NULL,
  content           TEXT NOT NULL,
  token_count       INTEGER NOT NULL DEFAULT 0,
  embedding         TEXT,
  created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  UNIQUE (document_id, ordinal)
);
CREATE INDEX chunks_knowledge_base_id ON chunks(knowledge_base_id);

CREATE VIRTUAL TABLE chunks_fts USING fts5(
  content, content='chunks', content_rowid='seq', tokenize='porter unicode61');
CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
  INSERT INTO chunks_fts(rowid, content) VALUES (new.seq, new.content);
END;
CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
  INSERT INTO chunks_fts(chunks_fts, rowid, content) VALUES ('delete', old.seq, old.content);
END;
CREATE TRIGGER chunks_fts_update AFTER UPDATE OF content ON chunks BEGIN
  INSERT INTO chunks_fts(chunks_fts, rowid, content) VALUES ('delete', old.seq, old.content);
  INSERT INTO chunks_fts(rowid, content) VALUES (new.seq, new.content);
END;

CREATE TABLE message_references (
  id          TEXT PRIMARY KEY,
  message_id  TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  document_id TEXT REFERENCES documents(id) ON DELETE SET NULL,
  chunk_id    TEXT REFERENCES chunks(id) ON DELETE SET NULL,
  ordinal     INTEGER NOT NULL DEFAULT 0,
  title       TEXT NOT NULL DEFAULT '',
  snippet     TEXT NOT NULL DEFAULT '',
  score       REAL,
  created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX message_references_message_id ON message_references(message_id);

CREATE TABLE usage_events (
  id                TEXT PRIMARY KEY,
  user_id           TEXT REFERENCES users(id) ON DELETE SET NULL,
  api_key_id        TEXT REFERENCES api_keys(id) ON DELETE SET NULL,
  model             TEXT NOT NULL,
  provider          TEXT NOT NULL DEFAULT '',
  prompt_tokens     INTEGER NOT NULL DEFAULT 0,
  completion_tokens INTEGER NOT NULL DEFAULT 0,
  cached_tokens     INTEGER NOT NULL DEFAULT 0,
  cost              REAL NOT NULL DEFAULT 0,
  latency_ms        INTEGER NOT NULL DEFAULT 0,
  ttft_ms           INTEGER,
  status            TEXT NOT NULL DEFAULT 'ok',
  created_at        TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX usage_events_user_created ON usage_events(user_id, created_at);
CREATE INDEX usage_events_api_key_created ON usage_events(api_key_id, created_at);
CREATE INDEX usage_events_created ON usage_events(created_at);

CREATE TABLE jobs (
  id           TEXT PRIMARY KEY,
  queue        TEXT NOT NULL DEFAULT 'default',
  type         TEXT NOT NULL,
  payload      TEXT NOT NULL DEFAULT '{}',
  status       TEXT NOT NULL DEFAULT 'queued'
               CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
  attempts     INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL DEFAULT 3,
  run_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  locked_by    TEXT,
  locked_until TEXT,
  last_error   TEXT,
  created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
-- Dequeue: the oldest due job of a queue. Reaper: running jobs whose lock expired.
CREATE INDEX jobs_dequeue ON jobs(queue, run_at) WHERE status = 'queued';
CREATE INDEX jobs_locked_until ON jobs(locked_until) WHERE status = 'running';
CREATE INDEX jobs_status_created ON jobs(status, created_at);

CREATE TABLE schedules (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  cron        TEXT NOT NULL,
  queue       TEXT NOT NULL DEFAULT 'default',
  type        TEXT NOT NULL,
  payload     TEXT NOT NULL DEFAULT '{}',
  enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
  next_run_at TEXT,
  last_run_at TEXT,
  created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX schedules_due ON schedules(next_run_at) WHERE enabled = 1;
)sql";

// Accounts: token_version is bumped by every security change (password, role, disable)
// and carried by access tokens as `ver`, so older tokens stop working at once;
// failed_logins/locked_until hold the login lockout. The indexes serve the keyset
// pagination of the admin user list and of a user's API keys.
constexpr std::string_view kAccountsSecurity = R"sql(
ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until TEXT;
CREATE INDEX users_created_id ON users(created_at, id);
CREATE INDEX api_keys_user_created ON api_keys(user_id, created_at, id);
)sql";

// Secrets at rest (provider API keys and the like), sealed by accounts::SecretBox: the
// database only ever holds ciphertext, whose prefix names the key that sealed it.
constexpr std::string_view kSecrets = R"sql(
CREATE TABLE secrets (
  name       TEXT PRIMARY KEY,
  ciphertext TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
)sql";

// Search over a user's messages and conversation titles (store/search_repository.hpp).
// FTS5 addresses rows by an integer rowid, and VACUUM may renumber the implicit rowids of
// messages and conversations (their keys are TEXT), so every searchable row gets a stable
// integer in search_documents (one per message, one per conversation for its title). The
// index keeps no copy of the text: it reads it through the view search_content when it
// builds snippets. Triggers keep both in step with the rows (a conversation's deletion
// cascades to its messages, whose triggers fire too). Only the first 100 000 characters
// of a message are indexed, as on PostgreSQL (where a tsvector has a size limit), and
// accents are kept (remove_diacritics 0), as PostgreSQL's english configuration does.
constexpr std::string_view kSearch = R"sql(
CREATE TABLE search_documents (
  seq             INTEGER PRIMARY KEY,
  conversation_id TEXT NOT NULL,
  message_id      TEXT
);
CREATE UNIQUE INDEX search_documents_message ON search_documents(message_id) WHERE message_id IS NOT NULL;
CREATE UNIQUE INDEX search_documents_title ON search_documents(conversation_id) WHERE message_id IS NULL;

CREATE VIEW search_content(seq, body) AS
  SELECT d.seq, CASE WHEN d.message_id IS NULL THEN c.title ELSE substr(m.content, 1, 100000) END
  FROM search_documents d
  JOIN conversations c ON c.id = d.conversation_id
  LEFT JOIN messages m ON m.id = d.message_id;

CREATE VIRTUAL TABLE search_fts USING fts5(
  body, content='search_content', content_rowid='seq', tokenize='porter unicode61 remove_diacritics 0');

CREATE TRIGGER search_message_insert AFTER INSERT ON messages BEGIN
  INSERT INTO search_documents(conversation_id, message_id) VALUES (new.conversation_id, new.id);
  INSERT INTO search_fts(rowid, body)
    SELECT seq, substr(new.content, 1, 100000) FROM search_documents WHERE message_id = new.id;
END;
CREATE TRIGGER search_message_update AFTER UPDATE OF content ON messages BEGIN
  INSERT INTO search_fts(search_fts, rowid, body)
    SELECT 'delete', seq, substr(old.content, 1, 100000) FROM search_documents WHERE message_id = old.id;
  INSERT INTO search_fts(rowid, body)
    SELECT seq, substr(new.content, 1, 100000) FROM search_documents WHERE message_id = new.id;
END;
CREATE TRIGGER search_message_delete AFTER DELETE ON messages BEGIN
  INSERT INTO search_fts(search_fts, rowid, body)
    SELECT 'delete', seq, substr(old.content, 1, 100000) FROM search_documents WHERE message_id = old.id;
  DELETE FROM search_documents WHERE message_id = old.id;
END;

CREATE TRIGGER search_title_insert AFTER INSERT ON conversations BEGIN
  INSERT INTO search_documents(conversation_id, message_id) VALUES (new.id, NULL);
  INSERT INTO search_fts(rowid, body)
    SELECT seq, new.title FROM search_documents WHERE conversation_id = new.id AND message_id IS NULL;
END;
CREATE TRIGGER search_title_update AFTER UPDATE OF title ON conversations BEGIN
  INSERT INTO search_fts(search_fts, rowid, body)
    SELECT 'delete', seq, old.title FROM search_documents WHERE conversation_id = old.id AND message_id IS NULL;
  INSERT INTO search_fts(rowid, body)
    SELECT seq, new.title FROM search_documents WHERE conversation_id = new.id AND message_id IS NULL;
END;
CREATE TRIGGER search_title_delete AFTER DELETE ON conversations BEGIN
  INSERT INTO search_fts(search_fts, rowid, body)
    SELECT 'delete', seq, old.title FROM search_documents WHERE conversation_id = old.id AND message_id IS NULL;
  DELETE FROM search_documents WHERE conversation_id = old.id AND message_id IS NULL;
END;

-- Backfill: what existed before this migration.
INSERT INTO search_documents(conversation_id, message_id) SELECT id, NULL FROM conversations ORDER BY created_at, id;
INSERT INTO search_documents(conversation_id, message_id)
  SELECT conversation_id, id FROM messages ORDER BY created_at, id;
INSERT INTO search_fts(search_fts) VALUES ('rebuild');
)sql";

// Answers being generated are searchable once they end. Rewriting the index at every
// flush of a growing answer (about once a second per stream) made the index the
// database's main cost with thousands of streams (bench/streams), and a half-written
// answer is a poor search hit. So the text of a message with status "streaming" is
// indexed — and seen through search_content — as empty, and its final state is indexed
// when its status changes. Messages streaming right now are re-indexed as empty first,
// with the text migration 4 indexed for them, so the index stays consistent.
constexpr std::string_view kSearchFinishedAnswers = R"sql(
INSERT INTO search_fts(search_fts, rowid, body)
  SELECT 'delete', d.seq, substr(m.content, 1, 100000)
  FROM messages m JOIN search_documents d ON d.message_id = m.id WHERE m.status = 'streaming';
INSERT INTO search_fts(rowid, body)
  SELECT d.seq, '' FROM messages m JOIN search_documents d ON d.message_id = m.id WHERE m.status = 'streaming';

DROP VIEW search_content;
CREATE VIEW search_content(seq, body) AS
  SELECT d.seq, CASE WHEN d.message_id IS NULL THEN c.title
                     WHEN m.status = 'streaming' THEN ''
                     ELSE substr(m.content, 1, 100000) END
  FROM search_documents d
  JOIN conversations c ON c.id = d.conversation_id
  LEFT JOIN messages m ON m.id = d.message_id;

DROP TRIGGER search_message_insert;
CREATE TRIGGER search_message_insert AFTER INSERT ON messages BEGIN
  INSERT INTO search_documents(conversation_id, message_id) VALUES (new.conversation_id, new.id);
  INSERT INTO search_fts(rowid, body)
    SELECT seq, CASE WHEN new.status = 'streaming' THEN '' ELSE substr(new.content, 1, 100000) END
    FROM search_documents WHERE message_id = new.id;
END;
DROP TRIGGER search_message_update;
CREATE TRIGGER search_message_update AFTER UPDATE OF content, status ON messages
  WHEN NOT (old.status = 'streaming' AND new.status = 'streaming') BEGIN
  INSERT INTO search_fts(search_fts, rowid, body)
    SELECT 'delete', seq, CASE WHEN old.status = 'streaming' THEN '' ELSE substr(old.content, 1, 100000) END
    FROM search_documents WHERE message_id = old.id;
  INSERT INTO search_fts(rowid, body)
    SELECT seq, CASE WHEN new.status = 'streaming' THEN '' ELSE substr(new.content, 1, 100000) END
    FROM search_documents WHERE message_id = new.id;
END;
DROP TRIGGER search_message_delete;
CREATE TRIGGER search_message_delete AFTER DELETE ON messages BEGIN
  INSERT INTO search_fts(search_fts, rowid, body)
    SELECT 'delete', seq, CASE WHEN old.status = 'streaming' THEN '' ELSE substr(old.content, 1, 100000) END
    FROM search_documents WHERE message_id = old.id;
  DELETE FROM search_documents WHERE message_id = old.id;
END;
)sql";

// Key limits (gateway/key_limiter.hpp): what an API key may call and how much. NULL is
// "no limit": allowed_models is a JSON array of public model names (NULL: every model);
// the budget is an amount of tokens or USD per UTC day or month, all three set or none.
// Spend is not stored here: it is the sum of the key's usage_events in the period.
constexpr std::string_view kKeyLimits = R"sql(
ALTER TABLE api_keys ADD COLUMN allowed_models TEXT;
ALTER TABLE api_keys ADD COLUMN rpm_limit INTEGER;
ALTER TABLE api_keys ADD COLUMN tpm_limit INTEGER;
ALTER TABLE api_keys ADD COLUMN budget_amount REAL;
ALTER TABLE api_keys ADD COLUMN budget_unit TEXT CHECK (budget_unit IN ('tokens', 'usd'));
ALTER TABLE api_keys ADD COLUMN budget_period TEXT CHECK (budget_period IN ('day', 'month'));
)sql";

// Whether the gateway's response cache may answer a key's requests (and keep its
// answers): on unless the key's owner turned it off (gateway/response_cache.hpp).
constexpr std::string_view kResponseCacheOptOut = R"sql(
ALTER TABLE api_keys ADD COLUMN response_cache INTEGER NOT NULL DEFAULT 1 CHECK (response_cache IN (0, 1));
)sql";

constexpr Migration kMigrations[] = {
    {1, "initial schema", kInitialSchema},
    {2, "accounts security", kAccountsSecurity},
    {3, "secrets", kSecrets},
    {4, "search", kSearch},
    {5, "search finished answers", kSearchFinishedAnswers},
    {6, "key limits", kKeyLimits},
    {7, "response cache opt-out", kResponseCacheOptOut},
};

}  // namespace

std::span<const Migration> SqliteMigrations() { return kMigrations; }

}  // namespace chatd::store

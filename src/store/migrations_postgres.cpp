// PostgreSQL schema: the same tables, columns and constraints as migrations_sqlite.cpp
// (see the conventions there), in PostgreSQL types: TIMESTAMPTZ, BOOLEAN, BIGINT,
// DOUBLE PRECISION. Full-text search is a generated tsvector column with a GIN index.
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
  is_active     BOOLEAN NOT NULL DEFAULT TRUE,
  last_login_at TIMESTAMPTZ,
  created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE refresh_tokens (
  id          TEXT PRIMARY KEY,
  user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  family_id   TEXT NOT NULL,
  token_hash  TEXT NOT NULL UNIQUE,
  expires_at  TIMESTAMPTZ NOT NULL,
  revoked_at  TIMESTAMPTZ,
  replaced_by TEXT,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
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
  expires_at   TIMESTAMPTZ,
  last_used_at TIMESTAMPTZ,
  revoked_at   TIMESTAMPTZ,
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_user_id ON api_keys(user_id);

CREATE TABLE conversations (
  id              TEXT PRIMARY KEY,
  user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  title           TEXT NOT NULL DEFAULT '',
  model           TEXT NOT NULL DEFAULT '',
  system_prompt   TEXT,
  params          TEXT NOT NULL DEFAULT '{}',
  pinned          BOOLEAN NOT NULL DEFAULT FALSE,
  archived        BOOLEAN NOT NULL DEFAULT FALSE,
  current_leaf_id TEXT,
  created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
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
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX messages_conversation_created ON messages(conversation_id, created_at DESC);
CREATE INDEX messages_parent_id ON messages(parent_id);

-- Declared after messages exists (SQLite accepts the forward reference inline).
ALTER TABLE conversations ADD CONSTRAINT conversations_current_leaf_fk
  FOREIGN KEY (current_leaf_id) REFERENCES messages(id) ON DELETE SET NULL;

CREATE TABLE knowledge_bases (
  id              TEXT PRIMARY KEY,
  user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  name            TEXT NOT NULL,
  description     TEXT NOT NULL DEFAULT '',
  embedding_model TEXT NOT NULL DEFAULT '',
  created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_bases_user_id ON knowledge_bases(user_id);

CREATE TABLE documents (
  id                TEXT PRIMARY KEY,
  knowledge_base_id TEXT NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
  user_id           TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  filename          TEXT NOT NULL,
  content_type      TEXT NOT NULL DEFAULT '',
  size_bytes        BIGINT NOT NULL DEFAULT 0,
  sha256            TEXT NOT NULL DEFAULT '',
  blob_key          TEXT NOT NULL DEFAULT '',
  status            TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
  error             TEXT,
  chunk_count       INTEGER NOT NULL DEFAULT 0,
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX documents_kb_created ON documents(knowledge_base_id, created_at DESC);
CREATE INDEX documents_user_id ON documents(user_id);

CREATE TABLE chunks (
  id                TEXT PRIMARY KEY,
  document_id       TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
  knowledge_base_id TEXT NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
  ordinal           INTEGER NOT NULL,
  content           TEXT NOT NULL,
  token_count       INTEGER NOT NULL DEFAULT 0,
  embedding         TEXT,
  search_vector     TSVECTOR GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  UNIQUE (document_id, ordinal)
);
CREATE INDEX chunks_knowledge_base_id ON chunks(knowledge_base_id);
CREATE INDEX chunks_search_vector ON chunks USING GIN (search_vector);

CREATE TABLE message_references (
  id          TEXT PRIMARY KEY,
  message_id  TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  document_id TEXT REFERENCES documents(id) ON DELETE SET NULL,
  chunk_id    TEXT REFERENCES chunks(id) ON DELETE SET NULL,
  ordinal     INTEGER NOT NULL DEFAULT 0,
  title       TEXT NOT NULL DEFAULT '',
  snippet     TEXT NOT NULL DEFAULT '',
  score       DOUBLE PRECISION,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
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
  cost              DOUBLE PRECISION NOT NULL DEFAULT 0,
  latency_ms        INTEGER NOT NULL DEFAULT 0,
  ttft_ms           INTEGER,
  status            TEXT NOT NULL DEFAULT 'ok',
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now()
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
  run_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  locked_by    TEXT,
  locked_until TIMESTAMPTZ,
  last_error   TEXT,
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Dequeue (FOR UPDATE SKIP LOCKED): the oldest due job of a queue. Reaper: running jobs
-- whose lock expired.
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
  enabled     BOOLEAN NOT NULL DEFAULT TRUE,
  next_run_at TIMESTAMPTZ,
  last_run_at TIMESTAMPTZ,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX schedules_due ON schedules(next_run_at) WHERE enabled;
)sql";

// Accounts: see migrations_sqlite.cpp.
constexpr std::string_view kAccountsSecurity = R"sql(
ALTER TABLE users
  ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0,
  ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0,
  ADD COLUMN locked_until  TIMESTAMPTZ;
CREATE INDEX users_created_id ON users(created_at, id);
CREATE INDEX api_keys_user_created ON api_keys(user_id, created_at, id);
)sql";

// Secrets at rest (provider API keys and the like), sealed by accounts::SecretBox: the
// database only ever holds ciphertext, whose prefix names the key that sealed it.
constexpr std::string_view kSecrets = R"sql(
CREATE TABLE secrets (
  name       TEXT PRIMARY KEY,
  ciphertext TEXT NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL
);
)sql";

// Search over a user's messages and conversation titles (store/search_repository.hpp):
// generated tsvector columns (English stemming, like SQLite's porter tokenizer) with GIN
// indexes; adding a generated column rewrites the table, which backfills it. Only the
// first 100 000 characters of a message are indexed: a tsvector is limited to 1 MB, and
// a message may be larger (100 000 characters of any text stay below it). Every '<' is
// followed by a space before parsing: PostgreSQL's parser takes "<word ...>" for an
// HTML tag and drops it — and the text of <script> elements — so code such as
// "Vec<String>" would lose words that SQLite's FTS5 finds (search_repository.cpp makes
// its snippets the same way and takes the spaces out again).
constexpr std::string_view kSearch = R"sql(
ALTER TABLE messages ADD COLUMN search_vector TSVECTOR
  GENERATED ALWAYS AS (to_tsvector('english', replace(left(content, 100000), '<', '< '))) STORED;
CREATE INDEX messages_search_vector ON messages USING GIN (search_vector);
ALTER TABLE conversations ADD COLUMN title_vector TSVECTOR
  GENERATED ALWAYS AS (to_tsvector('english', replace(title, '<', '< '))) STORED;
CREATE INDEX conversations_title_vector ON conversations USING GIN (title_vector);
)sql";

// Answers being generated are searchable once they end (see the SQLite migration 5):
// the vector of a message with status "streaming" is empty, so the growing answer's
// flushes (about once a second per stream) do not rebuild its vector and GIN entries.
constexpr std::string_view kSearchFinishedAnswers = R"sql(
DROP INDEX messages_search_vector;
ALTER TABLE messages DROP COLUMN search_vector;
ALTER TABLE messages ADD COLUMN search_vector TSVECTOR
  GENERATED ALWAYS AS (CASE WHEN status = 'streaming' THEN ''::tsvector
                            ELSE to_tsvector('english', replace(left(content, 100000), '<', '< ')) END) STORED;
CREATE INDEX messages_search_vector ON messages USING GIN (search_vector);
)sql";

// Key limits (gateway/key_limiter.hpp): what an API key may call and how much. NULL is
// "no limit": allowed_models is a JSON array of public model names (NULL: every model);
// the budget is an amount of tokens or USD per UTC day or month, all three set or none.
// Spend is not stored here: it is the sum of the key's usage_events in the period.
constexpr std::string_view kKeyLimits = R"sql(
ALTER TABLE api_keys ADD COLUMN allowed_models TEXT;
ALTER TABLE api_keys ADD COLUMN rpm_limit BIGINT;
ALTER TABLE api_keys ADD COLUMN tpm_limit BIGINT;
ALTER TABLE api_keys ADD COLUMN budget_amount DOUBLE PRECISION;
ALTER TABLE api_keys ADD COLUMN budget_unit TEXT CHECK (budget_unit IN ('tokens', 'usd'));
ALTER TABLE api_keys ADD COLUMN budget_period TEXT CHECK (budget_period IN ('day', 'month'));
)sql";

// Whether the gateway's response cache may answer a key's requests (and keep its
// answers): on unless the key's owner turned it off (gateway/response_cache.hpp).
constexpr std::string_view kResponseCacheOptOut = R"sql(
ALTER TABLE api_keys ADD COLUMN response_cache BOOLEAN NOT NULL DEFAULT TRUE;
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

std::span<const Migration> PostgresMigrations() { return kMigrations; }

}  // namespace chatd::store

// One libpq connection driven with libpq's non-blocking API on the calling coroutine's
// executor (internal to store/; see postgres_database.cpp for the pool around it).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "core/asio.hpp"
#include "core/expected.hpp"
#include "store/database.hpp"

struct pg_conn;

namespace chatd::store {

using Deadline = std::chrono::steady_clock::time_point;

inline Deadline DeadlineAfter(std::chrono::milliseconds timeout) { return std::chrono::steady_clock::now() + timeout; }

class PgConnection {
 public:
  /// Connects to `url` before `deadline`. PQconnectStartParams (which may resolve a host
  /// name) runs on `helper`; the handshake is PQconnectPoll driven by socket readiness on
  /// the caller's executor. Failure is kUnavailable "database unavailable".
  static Task<Expected<std::unique_ptr<PgConnection>>> Connect(const std::string& url, Deadline deadline,
                                                               asio::thread_pool::executor_type helper);

  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  /// Runs one statement with $n parameters (text format both ways) before `deadline`.
  /// Past the deadline the statement is cancelled (PQcancel on a separate thread) and
  /// the connection marked broken. Timestamps come back as RFC 3339 UTC, booleans as "1"/"0".
  Task<Expected<Result>> Query(std::string_view sql, const Params& params, Deadline deadline);
  /// Runs several statements without parameters (simple protocol): migrations.
  Task<Expected<void>> Script(std::string_view sql, Deadline deadline);

  /// Before reuse from the pool: reads whatever the server sent while the connection was
  /// idle (after a server restart: a FATAL notice, then end-of-file) and says whether it is
  /// still usable. Never blocks.
  bool CheckIdle();
  /// Cheap check when a connection comes back to the pool: healthy and not in a transaction.
  bool Reusable() const;
  bool InFailedTransaction() const;
  bool broken() const { return broken_; }
  void MarkBroken() { broken_ = true; }

 private:
  explicit PgConnection(pg_conn* conn) : conn_(conn) {}

  Task<Expected<Result>> Finish(std::string_view sql, Deadline deadline);
  Unexpected Lost(std::string_view sql);
  Unexpected TimedOut(std::string_view sql);

  pg_conn* conn_;
  bool broken_ = false;
};

}  // namespace chatd::store

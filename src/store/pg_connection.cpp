// libpq without blocking the I/O thread.
//
// Every wait for the server is a wait for socket readiness: the socket is wrapped in an
// asio::posix::stream_descriptor for that one wait and released right after, so a
// connection belongs to no io_context and can serve coroutines of any I/O thread. The
// wait races a deadline timer; both, and the release, run on a strand made for the wait,
// so the three never touch the descriptor at the same time on a multi-threaded
// io_context. The descriptor is released before the coroutine resumes, so the next wait
// can register the same socket again.
//
// The two libpq calls that block stay off the I/O threads too: PQconnectStartParams (host
// name resolution) runs on the pool's helper threads, PQcancel (which opens a new
// connection to the server) on a short-lived thread of its own.
#include "store/pg_connection.hpp"

#include <atomic>
#include <cctype>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/strand.hpp>
#include <fmt/format.h>
#include <libpq-fe.h>

#include "core/log.hpp"
#include "core/thread_name.hpp"
#include "core/run_on.hpp"

namespace chatd::store {

namespace {

// PostgreSQL type oids (server/catalog/pg_type_d.h, stable across versions).
constexpr Oid kBoolOid = 16;
constexpr Oid kTimestampOid = 1114;
constexpr Oid kTimestampTzOid = 1184;

// Threads blocked in PQcancel, process-wide (see TimedOut).
constexpr int kMaxCancelsInFlight = 4;
std::atomic<int> cancels_in_flight{0};

enum class WaitResult { kReady, kTimeout, kError };

// One bounded wait for socket readiness; see the file comment.
template <typename Handler>
class SocketWait : public std::enable_shared_from_this<SocketWait<Handler>> {
 public:
  SocketWait(const asio::any_io_executor& executor, Handler handler)
      : strand_(asio::make_strand(executor)), descriptor_(strand_), timer_(strand_), handler_(std::move(handler)) {}

  void Start(int fd, bool read, bool write, Deadline deadline) {
    asio::dispatch(strand_, [self = this->shared_from_this(), fd, read, write, deadline] {
      boost::system::error_code ec;
      self->descriptor_.assign(fd, ec);
      if (ec) return self->Finish(WaitResult::kError);
      // Any completion, even with an error, means "look at the socket again": libpq
      // itself then reports what went wrong.
      if (read) {
        self->descriptor_.async_wait(asio::posix::stream_descriptor::wait_read,
                                     [self](const auto&) { self->Finish(WaitResult::kReady); });
      }
      if (write) {
        self->descriptor_.async_wait(asio::posix::stream_descriptor::wait_write,
                                     [self](const auto&) { self->Finish(WaitResult::kReady); });
      }
      self->timer_.expires_at(deadline);
      self->timer_.async_wait([self](const boost::system::error_code& error) {
        if (!error) self->Finish(WaitResult::kTimeout);
      });
    });
  }

 private:
  void Finish(WaitResult result) {
    if (done_) return;
    done_ = true;
    timer_.cancel();
    if (descriptor_.is_open()) descriptor_.release();  // cancels the other wait; keeps the fd open
    auto executor = asio::get_associated_executor(handler_);
    asio::post(executor, [handler = std::move(handler_), result]() mutable { handler(result); });
  }

  asio::strand<asio::any_io_executor> strand_;
  asio::posix::stream_descriptor descriptor_;
  asio::steady_timer timer_;
  Handler handler_;
  bool done_ = false;
};

Task<WaitResult> WaitSocket(int fd, bool read, bool write, Deadline deadline) {
  if (fd < 0) co_return WaitResult::kError;
  auto executor = co_await asio::this_coro::executor;
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>, void(WaitResult)>(
      [executor, fd, read, write, deadline](auto handler) {
        using Op = SocketWait<std::decay_t<decltype(handler)>>;
        std::make_shared<Op>(executor, std::move(handler))->Start(fd, read, write, deadline);
      },
      asio::use_awaitable);
}

struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using PgResultPtr = std::unique_ptr<PGresult, PgResultDeleter>;

std::string Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  return std::string(text);
}

void LogNotice(void*, const char* message) { log::Debug(fmt::format("postgres: {}", Trim(message ? message : ""))); }

// "2026-01-02 03:04:05.678901+00" (ISO DateStyle, TimeZone UTC) -> "2026-01-02T03:04:05.678Z",
// the form SQLite stores. Anything else (infinity, BC dates) is passed through unchanged.
std::string ToRfc3339(std::string_view text) {
  if (text.size() < 19 || text[4] != '-' || text[10] != ' ' || text[13] != ':') {
    return std::string(text);
  }
  std::size_t i = 19;
  std::string fraction;
  if (i < text.size() && text[i] == '.') {
    for (++i; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
      fraction += text[i];
    }
  }
  const std::string_view zone = text.substr(i);
  if (!zone.empty() && zone != "+00") return std::string(text);
  fraction.resize(3, '0');
  std::string out(text.substr(0, 19));
  out[10] = 'T';
  out += '.';
  out += fraction;
  out += 'Z';
  return out;
}

Result ToResult(const PGresult* res) {
  Result result;
  const int columns = PQnfields(res);
  const int rows = PQntuples(res);
  result.columns.reserve(static_cast<std::size_t>(columns));
  for (int c = 0; c < columns; ++c) result.columns.emplace_back(PQfname(res, c));
  result.rows.resize(static_cast<std::size_t>(rows));
  for (int r = 0; r < rows; ++r) {
    auto& row = result.rows[static_cast<std::size_t>(r)];
    row.reserve(static_cast<std::size_t>(columns));
    for (int c = 0; c < columns; ++c) {
      if (PQgetisnull(res, r, c)) {
        row.emplace_back(std::nullopt);
        continue;
      }
      std::string_view value(PQgetvalue(res, r, c), static_cast<std::size_t>(PQgetlength(res, r, c)));
      switch (PQftype(res, c)) {
        case kBoolOid:
          row.emplace_back(value == "t" ? "1" : "0");
          break;
        case kTimestampOid:
        case kTimestampTzOid:
          row.emplace_back(ToRfc3339(value));
          break;
        default:
          row.emplace_back(std::string(value));
      }
    }
  }
  const char* affected = PQcmdTuples(const_cast<PGresult*>(res));
  result.affected_rows = (affected && *affected) ? std::atoll(affected) : 0;
  return result;
}

bool StartsWith(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }

// The session settings the result conversion relies on, after any the URL sets.
std::string SessionOptions(const std::string& url) {
  std::string options;
  char* error = nullptr;
  if (PQconninfoOption* parsed = PQconninfoParse(url.c_str(), &error)) {
    for (PQconninfoOption* option = parsed; option->keyword; ++option) {
      if (std::strcmp(option->keyword, "options") == 0 && option->val) options = option->val;
    }
    PQconninfoFree(parsed);
  }
  if (error) PQfreemem(error);
  if (!options.empty()) options += ' ';
  options += "-c TimeZone=UTC -c DateStyle=ISO";
  return options;
}

PGconn* StartConnect(const std::string& url) {
  const std::string options = SessionOptions(url);
  // dbname is expanded from the URL; keywords after it override the URL's values.
  const char* keys[] = {"dbname", "options", "fallback_application_name", nullptr};
  const char* values[] = {url.c_str(), options.c_str(), "chatd", nullptr};
  return PQconnectStartParams(keys, values, /*expand_dbname=*/1);
}

}  // namespace

Task<Expected<std::unique_ptr<PgConnection>>> PgConnection::Connect(const std::string& url, Deadline deadline,
                                                                    asio::thread_pool::executor_type helper) {
  PGconn* raw = co_await RunOn(helper, [&url] { return StartConnect(url); });
  if (raw == nullptr) co_return MakeError(ErrorCode::kUnavailable, "database unavailable");
  std::unique_ptr<PgConnection> connection(new PgConnection(raw));
  if (PQstatus(raw) == CONNECTION_BAD) co_return connection->Lost("connect");
  PQsetNoticeProcessor(raw, LogNotice, nullptr);
  // libpq's protocol: start as if PGRES_POLLING_WRITING, wait for what each poll asks.
  PostgresPollingStatusType poll = PGRES_POLLING_WRITING;
  while (poll != PGRES_POLLING_OK) {
    if (poll == PGRES_POLLING_FAILED) co_return connection->Lost("connect");
    const WaitResult waited =
        co_await WaitSocket(PQsocket(raw), poll == PGRES_POLLING_READING, poll == PGRES_POLLING_WRITING, deadline);
    if (waited == WaitResult::kTimeout) {
      log::Error("postgres: connect timed out");
      connection->broken_ = true;
      co_return MakeError(ErrorCode::kUnavailable, "database unavailable");
    }
    poll = PQconnectPoll(raw);
  }
  if (PQsetnonblocking(raw, 1) != 0) co_return connection->Lost("connect");
  co_return connection;
}

PgConnection::~PgConnection() {
  // Sends Terminate on a non-blocking socket and closes it: does not wait for the server.
  PQfinish(conn_);
}

Task<Expected<Result>> PgConnection::Query(std::string_view sql, const Params& params, Deadline deadline) {
  if (broken_) co_return MakeError(ErrorCode::kUnavailable, "database unavailable");
  const std::string text(sql);
  std::vector<std::string> storage(params.size());
  std::vector<const char*> values(params.size(), nullptr);
  for (std::size_t i = 0; i < params.size(); ++i) {
    std::visit(
        [&](const auto& value) {
          using T = std::decay_t<decltype(value)>;
          if constexpr (std::is_same_v<T, std::nullptr_t>) {
            return;  // NULL
          } else if constexpr (std::is_same_v<T, std::string>) {
            values[i] = value.c_str();
          } else {
            storage[i] = fmt::format("{}", value);  // int64 and double as text
            values[i] = storage[i].c_str();
          }
        },
        params[i]);
  }
  if (!PQsendQueryParams(conn_, text.c_str(), static_cast<int>(params.size()), nullptr, values.data(), nullptr, nullptr,
                         /*resultFormat=*/0)) {
    co_return Lost(sql);
  }
  co_return co_await Finish(sql, deadline);
}

Task<Expected<void>> PgConnection::Script(std::string_view sql, Deadline deadline) {
  if (broken_) co_return MakeError(ErrorCode::kUnavailable, "database unavailable");
  const std::string text(sql);
  if (!PQsendQuery(conn_, text.c_str())) co_return Lost(sql);
  auto result = co_await Finish(sql, deadline);
  if (!result) co_return Unexpected{std::move(result).error()};
  co_return Expected<void>();
}

// Flushes the query, then collects results until libpq has none left. The first error
// wins (a script reports the statement that failed).
Task<Expected<Result>> PgConnection::Finish(std::string_view sql, Deadline deadline) {
  for (;;) {
    const int flushed = PQflush(conn_);
    if (flushed == 0) break;
    if (flushed < 0) co_return Lost(sql);
    // libpq asks to wait for either direction: the server may be sending while we send.
    if (co_await WaitSocket(PQsocket(conn_), true, true, deadline) == WaitResult::kTimeout) {
      co_return TimedOut(sql);
    }
    if (!PQconsumeInput(conn_)) co_return Lost(sql);
  }
  std::optional<Expected<Result>> outcome;
  for (;;) {
    while (PQisBusy(conn_)) {
      if (co_await WaitSocket(PQsocket(conn_), true, false, deadline) == WaitResult::kTimeout) {
        co_return TimedOut(sql);
      }
      if (!PQconsumeInput(conn_)) co_return Lost(sql);
    }
    PgResultPtr res(PQgetResult(conn_));
    if (!res) break;
    const ExecStatusType status = PQresultStatus(res.get());
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK || status == PGRES_EMPTY_QUERY) {
      if (!outcome) outcome.emplace(ToResult(res.get()));
      continue;
    }
    if (outcome && !outcome->has_value()) continue;  // keep the first error
    const char* sqlstate_field = PQresultErrorField(res.get(), PG_DIAG_SQLSTATE);
    const std::string_view sqlstate = sqlstate_field ? sqlstate_field : "";
    const char* primary = PQresultErrorField(res.get(), PG_DIAG_MESSAGE_PRIMARY);
    const char* detail = PQresultErrorField(res.get(), PG_DIAG_MESSAGE_DETAIL);
    const std::string server_text = fmt::format("{}{}{}", primary ? primary : PQresultErrorMessage(res.get()),
                                                detail ? "; detail: " : "", detail ? detail : "");
    Error error{ErrorCode::kInternal, "database error"};
    if (sqlstate.empty()) {
      // libpq's own failure (no server message): usually a lost connection.
      if (PQstatus(conn_) == CONNECTION_BAD) {
        broken_ = true;
        error = {ErrorCode::kUnavailable, "database unavailable"};
      }
    } else if (sqlstate == "23505") {
      error = {ErrorCode::kConflict, "record already exists"};
    } else if (StartsWith(sqlstate, "23")) {
      error = {ErrorCode::kInvalidArgument, "value violates a database constraint"};
    } else if (StartsWith(sqlstate, "22")) {
      error = {ErrorCode::kInvalidArgument, "invalid value for a database field"};
    } else if (sqlstate == "08P01") {
      // Protocol violation reported for this statement (e.g. wrong parameter count): a
      // bug in store/, and the connection stays usable.
    } else if (sqlstate == "57014") {  // query_canceled (server-side statement_timeout)
      error = {ErrorCode::kUnavailable, "database timeout"};
    } else if (StartsWith(sqlstate, "08") || StartsWith(sqlstate, "57P")) {
      broken_ = true;  // connection exception, admin/crash shutdown
      error = {ErrorCode::kUnavailable, "database unavailable"};
    } else if (StartsWith(sqlstate, "53") || sqlstate == "40001" || sqlstate == "40P01") {
      error = {ErrorCode::kUnavailable, "database busy"};  // resources, serialization, deadlock
    }
    if (error.code == ErrorCode::kConflict || error.code == ErrorCode::kInvalidArgument) {
      log::Debug(fmt::format("postgres: {} [{}] in: {}", server_text, sqlstate, sql));
    } else {
      log::Error(fmt::format("postgres: {} [{}] in: {}", Trim(server_text), sqlstate, sql));
    }
    outcome.emplace(Unexpected{std::move(error)});
  }
  if (!outcome) co_return Lost(sql);
  co_return std::move(*outcome);
}

Unexpected PgConnection::Lost(std::string_view sql) {
  broken_ = true;
  log::Error(fmt::format("postgres: connection failed: {} in: {}", Trim(PQerrorMessage(conn_)), sql));
  return MakeError(ErrorCode::kUnavailable, "database unavailable");
}

Unexpected PgConnection::TimedOut(std::string_view sql) {
  broken_ = true;  // the connection is mid-statement; it is dropped, not reused
  log::Error(fmt::format("postgres: statement timed out, cancelling: {}", sql));
  // PQcancel blocks while it connects to the server, which can take minutes when the
  // host is unreachable, so it gets a thread of its own rather than one of the helpers
  // that start connections. The number of such threads is capped; past the cap the
  // statement is simply abandoned (the connection is closed either way).
  if (cancels_in_flight.fetch_add(1) >= kMaxCancelsInFlight) {
    cancels_in_flight.fetch_sub(1);
    log::Warn("postgres: too many cancels in flight; not cancelling");
  } else if (PGcancel* cancel = PQgetCancel(conn_)) {
    std::thread([cancel] {
      NameThisThread("chatd-pg");
      char error[256];
      if (!PQcancel(cancel, error, sizeof error)) log::Warn(fmt::format("postgres: cancel failed: {}", error));
      PQfreeCancel(cancel);
      cancels_in_flight.fetch_sub(1);
    }).detach();
  } else {
    cancels_in_flight.fetch_sub(1);
  }
  return MakeError(ErrorCode::kUnavailable, "database timeout");
}

bool PgConnection::CheckIdle() {
  if (!Reusable()) return false;
  // Twice: one read may return the server's last message without seeing end-of-file.
  for (int i = 0; i < 2; ++i) {
    if (!PQconsumeInput(conn_)) return false;
    (void)PQisBusy(conn_);  // parses what arrived; an error while idle becomes a notice
  }
  return PQstatus(conn_) == CONNECTION_OK;
}

bool PgConnection::Reusable() const {
  return !broken_ && PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) == PQTRANS_IDLE;
}

bool PgConnection::InFailedTransaction() const { return PQtransactionStatus(conn_) == PQTRANS_INERROR; }

}  // namespace chatd::store

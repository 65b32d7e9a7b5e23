#include "store/open.hpp"

#include <algorithm>
#include <cctype>

#include "store/postgres_database.hpp"
#include "store/sqlite_database.hpp"

namespace chatd::store {

namespace {

constexpr std::string_view kSqliteScheme = "sqlite://";
constexpr std::string_view kSqliteMemory = "sqlite::memory:";

bool StartsWith(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }

bool IsPostgresUrl(std::string_view url) { return StartsWith(url, "postgresql://") || StartsWith(url, "postgres://"); }

Expected<void> ValidateConfig(const DatabaseConfig& config) {
  if (config.pool_size == 0 || config.pool_size > 1000) {
    return MakeError(ErrorCode::kInvalidArgument, "database pool size must be 1..1000");
  }
  if (config.connect_timeout.count() <= 0 || config.statement_timeout.count() <= 0) {
    return MakeError(ErrorCode::kInvalidArgument, "database timeouts must be positive");
  }
  if (config.sqlite_readers > 64) {
    return MakeError(ErrorCode::kInvalidArgument, "sqlite_readers must be 0..64");
  }
  return {};
}

}  // namespace

Expected<std::unique_ptr<Database>> OpenDatabase(const DatabaseConfig& config) {
  if (auto valid = ValidateConfig(config); !valid) return Unexpected{std::move(valid).error()};
  const std::string_view url = config.url;
  if (url.empty()) {
    return MakeError(ErrorCode::kInvalidArgument, "database URL is empty");
  }
  if (url == kSqliteMemory) return OpenSqliteDatabase(":memory:", config);
  if (StartsWith(url, kSqliteScheme)) {
    std::string path(url.substr(kSqliteScheme.size()));
    if (path.empty() || path == "/") {
      return MakeError(ErrorCode::kInvalidArgument,
                       "sqlite database URL has no path (expected sqlite:///abs/path or "
                       "sqlite://relative/path)");
    }
    if (path.find_first_of("?#") != std::string::npos) {
      return MakeError(ErrorCode::kInvalidArgument, "sqlite database URL must not have a query string");
    }
    return OpenSqliteDatabase(path, config);
  }
  if (IsPostgresUrl(url)) return OpenPostgresDatabase(config);
  return MakeError(ErrorCode::kInvalidArgument,
                   "unsupported database URL (expected sqlite:///path, sqlite::memory: or "
                   "postgresql://user:password@host:port/db)");
}

std::string RedactDatabaseUrl(std::string_view url) {
  std::string out(url);
  // URL userinfo: scheme://user:password@host...
  if (auto scheme_end = out.find("://"); scheme_end != std::string::npos) {
    const std::size_t authority = scheme_end + 3;
    const std::size_t authority_end = std::min(out.find_first_of("/?#", authority), out.size());
    const std::size_t at = out.rfind('@', authority_end);
    if (at != std::string::npos && at >= authority) {
      const std::size_t colon = out.find(':', authority);
      if (colon != std::string::npos && colon < at) {
        out.replace(colon + 1, at - colon - 1, "***");
      }
    }
  }
  // password=... as a URL query parameter or a libpq key=value pair.
  constexpr std::string_view kKey = "password=";
  std::size_t pos = 0;
  while (pos < out.size()) {
    auto it = std::search(out.begin() + static_cast<std::ptrdiff_t>(pos), out.end(), kKey.begin(), kKey.end(),
                          [](char a, char b) { return std::tolower(static_cast<unsigned char>(a)) == b; });
    if (it == out.end()) break;
    const std::size_t start = static_cast<std::size_t>(it - out.begin());
    // Only a whole key: at the start, or after '?', '&' or whitespace.
    if (start > 0 && out[start - 1] != '?' && out[start - 1] != '&' &&
        !std::isspace(static_cast<unsigned char>(out[start - 1]))) {
      pos = start + kKey.size();
      continue;
    }
    const std::size_t value = start + kKey.size();
    std::size_t value_end = value;
    if (value < out.size() && out[value] == '\'') {  // libpq quoted value
      value_end = out.find('\'', value + 1);
      value_end = value_end == std::string::npos ? out.size() : value_end + 1;
    } else {
      while (value_end < out.size() && out[value_end] != '&' && out[value_end] != '#' &&
             !std::isspace(static_cast<unsigned char>(out[value_end]))) {
        ++value_end;
      }
    }
    out.replace(value, value_end - value, "***");
    pos = value + 3;
  }
  return out;
}

}  // namespace chatd::store

#pragma once

#include <memory>
#include <string>

#include "core/expected.hpp"
#include "store/database.hpp"
#include "store/open.hpp"

namespace chatd::store {

/// Opens the SQLite database at `path` (":memory:" for a private in-memory database,
/// which has no separate readers). Blocking; see OpenDatabase().
Expected<std::unique_ptr<Database>> OpenSqliteDatabase(const std::string& path, const DatabaseConfig& config);

}  // namespace chatd::store

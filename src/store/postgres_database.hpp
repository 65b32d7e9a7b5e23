#pragma once

#include <memory>

#include "core/expected.hpp"
#include "store/database.hpp"
#include "store/open.hpp"

namespace chatd::store {

/// A PostgreSQL database for `config.url`. Validates the URL but does not connect:
/// connections are made on first use. Never blocks.
Expected<std::unique_ptr<Database>> OpenPostgresDatabase(const DatabaseConfig& config);

}  // namespace chatd::store

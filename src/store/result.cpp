#include <charconv>
#include <stdexcept>
#include <string>

#include "store/database.hpp"

namespace chatd::store {

std::size_t Result::Column(std::string_view name) const {
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (columns[i] == name) return i;
  }
  throw std::out_of_range("result has no column named " + std::string(name));
}

std::string Result::Text(std::size_t row, std::string_view column) const {
  const auto& cell = Cell(row, column);
  return cell ? *cell : std::string();
}

std::int64_t Result::Int(std::size_t row, std::string_view column) const {
  const auto& cell = Cell(row, column);
  if (!cell) return 0;
  std::int64_t value = 0;
  const char* end = cell->data() + cell->size();
  auto [ptr, ec] = std::from_chars(cell->data(), end, value);
  if (ec != std::errc() || ptr != end) {
    // A bug in store/: the column is not an integer column.
    throw std::invalid_argument("column " + std::string(column) + " is not an integer");
  }
  return value;
}

double Result::Number(std::size_t row, std::string_view column) const {
  const auto& cell = Cell(row, column);
  if (!cell) return 0;
  double value = 0;
  const char* end = cell->data() + cell->size();
  auto [ptr, ec] = std::from_chars(cell->data(), end, value);
  if (ec != std::errc() || ptr != end) {
    // A bug in store/: the column is not a numeric column.
    throw std::invalid_argument("column " + std::string(column) + " is not a number");
  }
  return value;
}

}  // namespace chatd::store

namespace chatd::store {

Task<Expected<std::vector<std::int64_t>>> Database::ExecuteBatch(std::string_view sql, std::vector<Params> rows) {
  std::vector<std::int64_t> affected;
  if (rows.empty()) co_return affected;
  auto transaction = co_await Begin();
  if (!transaction) co_return Unexpected{std::move(transaction).error()};
  affected.reserve(rows.size());
  for (Params& params : rows) {
    auto result = co_await (*transaction)->Execute(sql, std::move(params));
    if (!result) co_return Unexpected{std::move(result).error()};
    affected.push_back(result->affected_rows);
  }
  auto committed = co_await (*transaction)->Commit();
  if (!committed) co_return Unexpected{std::move(committed).error()};
  co_return affected;
}

Task<Expected<bool>> Database::ExecuteAll(std::vector<Statement> statements) {
  auto transaction = co_await Begin();
  if (!transaction) co_return Unexpected{std::move(transaction).error()};
  for (Statement& statement : statements) {
    auto result = co_await (*transaction)->Execute(statement.sql, std::move(statement.params));
    if (!result) co_return Unexpected{std::move(result).error()};
    if (statement.must_change && result->affected_rows == 0) co_return false;  // rolled back as it ends
  }
  auto committed = co_await (*transaction)->Commit();
  if (!committed) co_return Unexpected{std::move(committed).error()};
  co_return true;
}

}  // namespace chatd::store

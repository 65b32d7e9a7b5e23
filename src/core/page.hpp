// One page of a list: what list endpoints ask for and what services answer. The cursor
// is opaque to clients; the store encodes where the next page starts.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace chatd {

struct PageRequest {
  std::size_t limit = 20;
  std::string cursor;  // empty: the first page
};

template <typename T>
struct Page {
  std::vector<T> items;
  std::string next_cursor;  // empty: this is the last page
};

}  // namespace chatd

// Names for chatd's threads, as top -H, perf, gdb and /proc/<pid>/task/*/comm show them,
// so an operator (or a profile) can tell the I/O threads from the database writer:
//
//   chatd           the main thread, which is also I/O thread 0 (the process keeps its
//                   name); spdlog's once-a-second log flusher, which cannot be named, too
//   chatd-io-<n>    the other I/O threads
//   chatd-db-write  SQLite's writer        chatd-db-read   SQLite's readers
//   chatd-pg        PostgreSQL's connection starts and cancels
//   chatd-usage     the usage recorder     chatd-hash      password hashing
//   chatd-log       the asynchronous log writer
#pragma once

#include <cstddef>
#include <functional>
#include <string_view>

#include "core/asio.hpp"

namespace chatd {

/// Names the calling thread; Linux keeps the first 15 bytes.
void NameThisThread(std::string_view name);

/// Runs `each()` once on every one of the `threads` threads of `pool` (an asio::thread_pool
/// hands out no thread handles), before they take other work; returns when all have.
void OnEveryThread(asio::thread_pool& pool, std::size_t threads, const std::function<void()>& each);

}  // namespace chatd

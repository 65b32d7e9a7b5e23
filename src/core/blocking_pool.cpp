#include "core/blocking_pool.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <string>

#include "core/thread_name.hpp"

namespace chatd {

BlockingPool::BlockingPool(std::size_t threads, std::size_t max_pending, std::string_view name, int nice)
    : pool_(threads), threads_(threads), max_pending_(max_pending) {
  OnEveryThread(pool_, threads, [name = std::string(name), nice] {
    NameThisThread(name);
    if (nice != 0) setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice);
  });
}

}  // namespace chatd

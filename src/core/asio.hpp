// The one header through which chatd code sees Boost.Asio.
//
// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>, which
// g++ 12 no longer pulls in transitively, so <utility> must come first. Asio itself is
// compiled once (asio_impl.cpp) under BOOST_ASIO_SEPARATE_COMPILATION.
#pragma once

#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace chatd {
namespace asio = boost::asio;

template <typename T = void>
using Task = asio::awaitable<T>;

inline constexpr auto& kUseAwaitable = asio::use_awaitable;
}  // namespace chatd

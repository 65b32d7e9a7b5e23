// Internal to `http` (it includes Asio): the first step of every write on a plain TCP
// socket, the server's and the client's alike.
#pragma once

#include <cstddef>

#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/asio.hpp"

namespace chatd::http {

/// Sends what the socket takes at once with one non-blocking send: no asynchronous
/// operation, timer or trip through the scheduler, which is most of what a small write
/// costs (a streamed answer writes once per token; nginx writes the same way). Returns the
/// bytes sent; a full socket is not an error (`ec` stays clear): the caller sends the rest
/// asynchronously, under its write timeout. The socket must be in non-blocking mode
/// (`non_blocking(true)`), or a full socket would block the I/O thread.
template <typename Buffers>
std::size_t SendNow(asio::ip::tcp::socket& socket, const Buffers& buffers, boost::system::error_code& ec) {
  const std::size_t sent = socket.write_some(buffers, ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
  return sent;
}

}  // namespace chatd::http

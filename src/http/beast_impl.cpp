// Compiles Beast's implementation once for the whole program, and Asio's TLS layer
// (only the HTTP client uses it, so OpenSSL is linked here, not into core).
#include <utility>

#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>

// Compiles Asio's implementation once for the whole program (see asio.hpp).
#include <utility>

#include <boost/asio/impl/src.hpp>

// Compiles Beast's implementation once for the whole program.
#include <utility>

#include <boost/beast/src.hpp>

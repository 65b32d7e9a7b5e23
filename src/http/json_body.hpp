// Reading a JSON request body the same way on every route: 415 unless the Content-Type
// is JSON, 400 naming the line and column where malformed JSON broke.
#pragma once

#include <simdjson.h>

#include "core/expected.hpp"
#include "http/message.hpp"

namespace chatd::http {

/// Parses the body of `request` with `parser` (one per thread: see ThreadJsonParser).
/// The element points into `parser` and is valid until its next use.
Expected<simdjson::dom::element> ParseJsonBody(const Request& request, simdjson::dom::parser& parser);

/// A parser owned by the calling thread, reused across requests to keep its buffers.
simdjson::dom::parser& ThreadJsonParser();

}  // namespace chatd::http

#include "http/json_body.hpp"

#include "core/json.hpp"

namespace chatd::http {

Expected<simdjson::dom::element> ParseJsonBody(const Request& request, simdjson::dom::parser& parser) {
  const std::string type = request.ContentType();
  // application/json, and structured-syntax types like application/merge-patch+json.
  const bool json = type == "application/json" || (type.starts_with("application/") && type.ends_with("+json"));
  if (!json) {
    return MakeError(ErrorCode::kUnsupportedMediaType,
                     type.empty() ? "the request body must be JSON (Content-Type: application/json)"
                                  : "the request body must be JSON (Content-Type: application/json), not " + type);
  }
  return ParseJson(parser, request.body);
}

simdjson::dom::parser& ThreadJsonParser() {
  thread_local simdjson::dom::parser parser;
  return parser;
}

}  // namespace chatd::http

#include "llm/sse_parser.hpp"

namespace chatd::llm {

Expected<void> SseParser::Feed(std::string_view bytes) {
  std::size_t start = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (skip_lf_) {
      skip_lf_ = false;
      if (c == '\n') {
        start = i + 1;
        continue;
      }
    }
    if (c != '\n' && c != '\r') continue;
    line_.append(bytes.substr(start, i - start));
    Line(line_);
    line_.clear();
    skip_lf_ = c == '\r';
    start = i + 1;
  }
  line_.append(bytes.substr(start));
  if (line_.size() + current_.data.size() > max_event_bytes_) {
    return MakeError(ErrorCode::kUpstreamUnavailable,
                     "the upstream sent an event larger than " + std::to_string(max_event_bytes_) + " bytes");
  }
  return {};
}

void SseParser::Line(std::string_view line) {
  if (line.empty()) {  // dispatch
    if (has_data_) ready_.push_back(std::move(current_));
    current_ = SseEvent{};
    has_data_ = false;
    return;
  }
  if (line.front() == ':') return;  // a comment (keep-alive)
  const std::size_t colon = line.find(':');
  const std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "data") {
    if (has_data_) current_.data += '\n';
    current_.data.append(value);
    has_data_ = true;
  } else if (field == "event") {
    current_.event = std::string(value);
  } else if (field == "id") {
    current_.id = std::string(value);
  }  // "retry" and unknown fields: ignored
}

std::optional<SseEvent> SseParser::Next() {
  if (ready_.empty()) return std::nullopt;
  SseEvent event = std::move(ready_.front());
  ready_.pop_front();
  return event;
}

}  // namespace chatd::llm

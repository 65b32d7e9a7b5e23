#include "llm/sse_parser.hpp"

#include <algorithm>
#include <cstring>

namespace chatd::llm {

Expected<void> SseParser::Feed(std::string_view bytes) {
  std::size_t start = 0;
  if (skip_lf_ && !bytes.empty()) {
    skip_lf_ = false;
    if (bytes.front() == '\n') start = 1;  // the LF of a CRLF cut between two pieces
  }
  // Lines are found with memchr, not byte by byte: a chunk of a completion is a few
  // hundred bytes of JSON with one line ending. `cr` is the next CR at or after `start`
  // (OpenAI-compatible servers send none, so it is looked for once per piece).
  const char* const data = bytes.data();
  const std::size_t size = bytes.size();
  std::size_t cr = start;
  while (start < size) {
    if (cr < start || (cr < size && data[cr] != '\r')) {
      const void* found = std::memchr(data + start, '\r', size - start);
      cr = found != nullptr ? static_cast<std::size_t>(static_cast<const char*>(found) - data) : size;
    }
    const void* lf = std::memchr(data + start, '\n', std::min(cr, size) - start);
    const std::size_t end = lf != nullptr ? static_cast<std::size_t>(static_cast<const char*>(lf) - data) : cr;
    if (end >= size) break;  // no line end in what is left: an incomplete line
    if (line_.empty()) {
      Line(bytes.substr(start, end - start));  // the usual case: the whole line is here
    } else {
      line_.append(data + start, end - start);
      Line(line_);
      line_.clear();
    }
    start = end + 1;
    if (data[end] == '\r') {
      if (start == size) {
        skip_lf_ = true;
      } else if (data[start] == '\n') {
        ++start;
      }
    }
  }
  line_.append(data + start, size - start);
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
  if (next_ == ready_.size()) return std::nullopt;
  SseEvent event = std::move(ready_[next_++]);
  if (next_ == ready_.size()) {  // all taken: start over, keeping the capacity
    ready_.clear();
    next_ = 0;
  }
  return event;
}

}  // namespace chatd::llm

// Server-Sent Events parsing (the WHATWG "event stream" format), as upstreams stream chat
// completions. Bytes go in as they arrive, cut anywhere (even inside a CRLF); whole events
// come out. Lines end with LF, CR or CRLF; `data:` lines of one event are joined with
// "\n"; comment lines (":...") and unknown fields are ignored; an event is dispatched at a
// blank line, and one with no data is dropped (as browsers do). Bounded: a line or an
// event longer than the limit is an error, so an upstream cannot grow our memory.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/expected.hpp"

namespace chatd::llm {

struct SseEvent {
  std::string event;  // the `event:` field; empty means "message"
  std::string data;
  std::string id;
};

class SseParser {
 public:
  explicit SseParser(std::size_t max_event_bytes = 4 * 1024 * 1024) : max_event_bytes_(max_event_bytes) {}

  /// Consumes `bytes`. kUpstreamUnavailable when a line or an event exceeds the limit;
  /// the parser is unusable after that.
  Expected<void> Feed(std::string_view bytes);
  /// The next complete event, in order; nullopt when none is complete yet.
  std::optional<SseEvent> Next();

 private:
  void Line(std::string_view line);

  std::size_t max_event_bytes_;
  std::string line_;               // the incomplete line so far
  bool skip_lf_ = false;           // the last byte was CR: a following LF belongs to it
  SseEvent current_;
  bool has_data_ = false;
  // Complete events not taken yet, from ready_[next_]: a vector, not a deque, because a
  // deque allocates half a KiB up front and thousands of streams each hold a parser.
  std::vector<SseEvent> ready_;
  std::size_t next_ = 0;
};

}  // namespace chatd::llm

#include "cache/rate_limiter.hpp"

#include <cctype>
#include <charconv>
#include <cmath>

namespace chatd::cache {

namespace {

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// A finite positive decimal ("10", "0.5"); no sign, exponent, or trailing characters.
std::optional<double> PositiveNumber(std::string_view text) {
  if (text.empty() || !(std::isdigit(static_cast<unsigned char>(text.front())) || text.front() == '.')) {
    return std::nullopt;
  }
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, std::chars_format::fixed);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value) || value <= 0 || value > 1e9) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

std::optional<RateLimit> ParseRateLimit(std::string_view rate, std::string_view burst) {
  rate = Trim(rate);
  const auto slash = rate.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const auto count = PositiveNumber(Trim(rate.substr(0, slash)));
  const std::string_view unit = Trim(rate.substr(slash + 1));
  double seconds = 0;
  if (unit == "s") {
    seconds = 1;
  } else if (unit == "m") {
    seconds = 60;
  } else if (unit == "h") {
    seconds = 3600;
  } else {
    return std::nullopt;
  }
  if (!count) return std::nullopt;

  RateLimit limit{.rate_per_second = *count / seconds, .burst = *count};
  burst = Trim(burst);
  if (!burst.empty()) {
    const auto size = PositiveNumber(burst);
    if (!size || *size < 1) return std::nullopt;
    limit.burst = *size;
  }
  if (limit.burst < 1) return std::nullopt;  // "0.5/s" alone: no request could ever pass
  return limit;
}

}  // namespace chatd::cache

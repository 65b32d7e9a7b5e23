#include "core/log.hpp"

#include <chrono>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <spdlog/async.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "core/json.hpp"
#include "core/thread_name.hpp"
#include "core/time.hpp"

namespace chatd::log {

namespace {

bool json_format = false;

constexpr std::string_view LevelName(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    case spdlog::level::err: return "error";
    case spdlog::level::critical: return "critical";
    default: return "off";
  }
}

void AppendTextValue(std::string& out, std::string_view value) {
  const bool needs_quotes = value.empty() || value.find_first_of(" \"=\t\n") != std::string_view::npos;
  if (!needs_quotes) {
    out += value;
    return;
  }
  out.push_back('"');
  AppendJsonEscaped(out, value);
  out.push_back('"');
}

}  // namespace

void Init(const LogConfig& config) {
  json_format = config.format == "json";
  spdlog::init_thread_pool(16384, 1, [] { NameThisThread("chatd-log"); });
  spdlog::sink_ptr sink;
  if (config.file.empty()) {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  } else {
    sink = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(config.file, 10 * 1024 * 1024, 10);
  }
  auto logger = std::make_shared<spdlog::async_logger>("chatd", sink, spdlog::thread_pool(),
                                                       spdlog::async_overflow_policy::overrun_oldest);
  logger->set_pattern("%v");
  logger->set_level(spdlog::level::from_str(config.level));
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  spdlog::flush_every(std::chrono::seconds(1));
}

void Shutdown() {
  if (auto logger = spdlog::default_logger()) logger->flush();
  spdlog::shutdown();
}

bool Enabled(spdlog::level::level_enum level) { return spdlog::default_logger_raw()->should_log(level); }

void Write(spdlog::level::level_enum level, std::string_view message, Fields fields) {
  auto* logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) return;
  std::string line;
  line.reserve(160 + message.size());
  const std::string ts = FormatRfc3339(std::chrono::system_clock::now());
  if (json_format) {
    JsonWriter json;
    json.BeginObject().Field("ts", ts).Field("level", LevelName(level)).Field("msg", message);
    for (const Field& field : fields) {
      json.Key(field.key());
      switch (field.kind()) {
        case Field::Kind::kString: json.String(field.str()); break;
        case Field::Kind::kInt: json.Int(field.integer()); break;
        case Field::Kind::kDouble: json.Double(field.real()); break;
        case Field::Kind::kBool: json.Bool(field.boolean()); break;
      }
    }
    json.EndObject();
    line = std::move(json).str();
  } else {
    line += ts;
    line.push_back(' ');
    line += LevelName(level);
    line.push_back(' ');
    line += message;
    for (const Field& field : fields) {
      line.push_back(' ');
      line += field.key();
      line.push_back('=');
      switch (field.kind()) {
        case Field::Kind::kString: AppendTextValue(line, field.str()); break;
        case Field::Kind::kInt: fmt::format_to(std::back_inserter(line), "{}", field.integer()); break;
        case Field::Kind::kDouble: fmt::format_to(std::back_inserter(line), "{}", field.real()); break;
        case Field::Kind::kBool: line += field.boolean() ? "true" : "false"; break;
      }
    }
  }
  logger->log(level, "{}", line);
}

}  // namespace chatd::log

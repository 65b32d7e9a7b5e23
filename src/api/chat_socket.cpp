#include "api/chat_socket.hpp"

#include <boost/asio/redirect_error.hpp>
#include <fmt/format.h>

#include "api/chat_api.hpp"
#include "api/json_fields.hpp"
#include "api/turn_events.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "http/json_body.hpp"
#include "http/websocket.hpp"

namespace chatd::api {

namespace {

using namespace std::chrono_literals;
using http::CloseCode;

constexpr std::string_view kSubprotocol = "chatd";
constexpr std::string_view kBearerProtocolPrefix = "bearer.";
constexpr auto kAuthTimeout = 10s;
constexpr std::size_t kMaxTurnsPerSocket = 16;
constexpr std::size_t kMaxClientIdBytes = 128;
// How often a follower whose turn is quiet checks that its socket is still open, so a
// closing socket is not kept waiting for its followers.
constexpr auto kFollowerCheck = 250ms;

std::string ErrorJson(std::string_view client_id, const Error& error) {
  JsonWriter json;
  json.BeginObject().Field("type", "error");
  if (!client_id.empty()) json.Key("id").Raw(client_id);
  json.Key("error").BeginObject();
  json.Field("message", error.message).Field("type", ErrorType(error.code)).Field("code", ErrorCodeName(error.code));
  if (!error.param.empty()) json.Field("param", error.param);
  json.EndObject().EndObject();
  return std::move(json).str();
}

// The client's id for a turn, as raw JSON to echo back: a string or an integer.
Expected<std::string> ClientId(const JsonObject& message) {
  auto value = message.OptionalValue("id");
  if (!value || !(value->is_string() || value->is_int64())) {
    return MakeError(ErrorCode::kInvalidArgument, "id must be a string or an integer", "id");
  }
  std::string raw = simdjson::minify(*value);
  if (raw.size() > kMaxClientIdBytes) return MakeError(ErrorCode::kInvalidArgument, "id is too long", "id");
  return raw;
}

}  // namespace

// A socket's entry in the revocation list; `close` runs on the socket's thread.
struct ChatSocket::Registration {
  std::string user_id;
  std::string credential_id;
  asio::any_io_executor executor;
  std::function<void()> close;
};

// One authenticated socket: reads client messages and runs a follower coroutine per turn,
// all on the connection's thread. Before Run() returns, every follower has ended.
class ChatSocket::Session {
 public:
  Session(ChatSocket& owner, http::WebSocket& socket, accounts::Principal principal)
      : owner_(owner), socket_(socket), principal_(std::move(principal)) {}

  Task<void> Run() {
    JsonWriter ready;
    ready.BeginObject().Field("type", "ready").Field("user_id", principal_.user_id).EndObject();
    if (co_await socket_.Send(std::move(ready).str())) {
      while (true) {
        auto text = co_await socket_.Read();
        if (!text) break;
        co_await Handle(*text);
      }
    }
    closed_ = true;
    // Followers notice within kFollowerCheck; their generations go on without them.
    asio::steady_timer wait(co_await asio::this_coro::executor);
    while (followers_ > 0) {
      wait.expires_after(10ms);
      boost::system::error_code ec;
      co_await wait.async_wait(asio::redirect_error(kUseAwaitable, ec));
    }
  }

 private:
  // Delivers one turn's events to the socket with the client's id.
  class Sink final : public chat::TurnSink {
   public:
    Sink(Session& session, std::string client_id) : session_(session), client_id_(std::move(client_id)) {}
    Task<bool> Send(const chat::TurnEvent& event) override {
      if (session_.closed_) co_return false;
      std::string json = EventJson(event, client_id_);  // a named local: g++ 12 and co_await
      co_return co_await session_.socket_.Send(std::move(json));
    }
    Task<bool> Ping() override { co_return !session_.closed_; }

   private:
    Session& session_;
    std::string client_id_;
  };

  Task<void> Handle(std::string_view text) {
    simdjson::dom::parser& parser = http::ThreadJsonParser();
    auto parsed = ParseJson(parser, text);
    if (!parsed) {
      co_await Refuse({}, parsed.error());
      co_return;
    }
    auto message = JsonObject::From(*parsed);
    if (!message) {
      co_await Refuse({}, message.error());
      co_return;
    }
    auto type = message->RequiredString("type");
    if (!type) {
      co_await Refuse({}, type.error());
      co_return;
    }
    if (*type == "ping") {
      std::string pong = R"({"type":"pong"})";
      co_await socket_.Send(std::move(pong));
      co_return;
    }
    auto client_id = ClientId(*message);
    if (!client_id) {
      co_await Refuse({}, client_id.error());
      co_return;
    }
    if (*type == "chat" || *type == "regenerate") {
      co_await StartTurn(*message, *client_id, *type == "regenerate");
    } else if (*type == "cancel") {
      co_await Cancel(*client_id);
    } else if (*type == "resume") {
      co_await Resume(*message, *client_id);
    } else {
      const Error unknown{ErrorCode::kInvalidArgument, "type must be one of chat, regenerate, cancel, resume, ping",
                          "type"};
      co_await Refuse(*client_id, unknown);
    }
  }

  Task<void> StartTurn(const JsonObject& message, const std::string& client_id, bool regenerate) {
    if (turns_.contains(client_id)) {
      const Error refusal{ErrorCode::kConflict, "this id is already used on this socket", "id"};
      co_await Refuse(client_id, refusal);
      co_return;
    }
    if (followers_ >= kMaxTurnsPerSocket) {
      const Error refusal{ErrorCode::kRateLimited, "too many turns at once on this socket"};
      co_await Refuse(client_id, refusal);
      co_return;
    }
    auto conversation_id = message.RequiredString("conversation_id");
    if (!conversation_id) {
      co_await Refuse(client_id, conversation_id.error());
      co_return;
    }
    auto turn = ParseTurn(message, regenerate);
    if (!turn) {
      co_await Refuse(client_id, turn.error());
      co_return;
    }
    if (regenerate) {
      auto target = message.RequiredString("message_id");
      if (!target) {
        co_await Refuse(client_id, target.error());
        co_return;
      }
      turn->regenerate = std::string(*target);
    }
    turn->credential_id = principal_.api_key_id;
    // Sessions share the user's app-API bucket, as over HTTP.
    if (!principal_.ViaApiKey()) {
      std::vector<std::pair<std::string, std::string>> headers;
      const std::string bucket = "api:" + principal_.user_id;
      auto limited = co_await owner_.guard_.Limit(bucket, owner_.guard_.limits().api, headers);
      if (limited) {
        const Error refusal{ErrorCode::kRateLimited, "too many requests; slow down"};
        co_await Refuse(client_id, refusal);
        co_return;
      }
    }
    auto generation = co_await owner_.chat_.Start(principal_.user_id, *conversation_id, *turn);
    if (!generation) {
      co_await Refuse(client_id, generation.error());
      co_return;
    }
    turns_[client_id] = (*generation)->info().message_id;
    Spawn(std::move(*generation), 0, client_id);
  }

  Task<void> Cancel(const std::string& client_id) {
    auto turn = turns_.find(client_id);
    if (turn == turns_.end() || !owner_.generations_.Cancel(principal_.user_id, turn->second)) {
      const Error refusal{ErrorCode::kNotFound, "no turn with this id is being generated", "id"};
      co_await Refuse(client_id, refusal);
    }
  }

  Task<void> Resume(const JsonObject& message, const std::string& client_id) {
    auto message_id = message.RequiredString("message_id");
    if (!message_id) {
      co_await Refuse(client_id, message_id.error());
      co_return;
    }
    std::int64_t after = 0;
    if (auto value = message.OptionalValue("after"); value && (value->get(after) != simdjson::SUCCESS || after < 0)) {
      const Error refusal{ErrorCode::kInvalidArgument, "after must be an event id", "after"};
      co_await Refuse(client_id, refusal);
      co_return;
    }
    auto generation = owner_.generations_.Find(principal_.user_id, *message_id);
    if (!generation) {
      const Error refusal{ErrorCode::kNotFound, "no such generation to resume", "message_id"};
      co_await Refuse(client_id, refusal);
      co_return;
    }
    turns_[client_id] = generation->info().message_id;
    Spawn(std::move(generation), static_cast<std::uint64_t>(after), client_id);
  }

  void Spawn(std::shared_ptr<chat::Generation> generation, std::uint64_t after, std::string client_id) {
    ++followers_;
    asio::co_spawn(socket_executor_, Follow(std::move(generation), after, std::move(client_id)), asio::detached);
  }

  Task<void> Follow(std::shared_ptr<chat::Generation> generation, std::uint64_t after, std::string client_id) {
    struct Done {
      Session& session;
      const std::string& id;
      ~Done() {
        session.turns_.erase(id);
        --session.followers_;
      }
    } done{*this, client_id};
    Sink sink(*this, client_id);
    co_await generation->Follow(after, sink, kFollowerCheck);
  }

  Task<void> Refuse(std::string_view client_id, const Error& error) {
    std::string json = ErrorJson(client_id, error);
    co_await socket_.Send(std::move(json));
  }

 public:
  asio::any_io_executor socket_executor_;

 private:
  ChatSocket& owner_;
  http::WebSocket& socket_;
  const accounts::Principal principal_;
  std::unordered_map<std::string, std::string> turns_;  // client id (raw JSON) → message id
  std::size_t followers_ = 0;
  bool closed_ = false;
};

ChatSocket::ChatSocket(Guard& guard, chat::ChatService& chat, chat::Generations& generations,
                       metrics::Registry& metrics)
    : guard_(guard),
      chat_(chat),
      generations_(generations),
      connections_(metrics.AddGauge("websocket_active_connections", "WebSocket connections open.").WithLabels({})) {}

ChatSocket::~ChatSocket() = default;

Task<http::Response> ChatSocket::Serve(http::Request& request) {
  if (request.upgrade == nullptr) {
    http::Response refusal = http::Response::FromError(ErrorCode::kInvalidArgument, "this endpoint speaks WebSocket");
    refusal.status = 426;
    refusal.AddHeader("Upgrade", "websocket");
    co_return refusal;
  }
  http::WebSocketUpgrade& upgrade = *request.upgrade;
  std::string_view credential = Guard::Credential(request);
  bool offered_chatd = false;
  for (const std::string& protocol : upgrade.offered_protocols()) {
    if (protocol == kSubprotocol) offered_chatd = true;
    if (credential.empty() && protocol.starts_with(kBearerProtocolPrefix)) {
      credential = std::string_view(protocol).substr(kBearerProtocolPrefix.size());
    }
  }
  std::optional<accounts::Principal> principal;
  if (!credential.empty()) {
    // A bad credential on the upgrade request is refused in HTTP, which every client shows.
    auto authenticated = co_await guard_.Authenticate(credential, Access::kUser);
    if (!authenticated) co_return ErrorResponse(authenticated.error());
    principal = std::move(*authenticated);
  }
  const std::string_view selected = offered_chatd ? kSubprotocol : std::string_view{};
  http::WebSocket* socket = co_await upgrade.Accept(selected);
  if (socket == nullptr) co_return http::Response{};
  connections_.Inc();
  struct Connected {
    metrics::Gauge& gauge;
    ~Connected() { gauge.Dec(); }
  } connected{connections_};

  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  if (!principal) {
    // The first message must authenticate, in time.
    asio::steady_timer deadline(executor, kAuthTimeout);
    deadline.async_wait([socket](boost::system::error_code ec) {
      if (!ec) socket->CloseSoon(CloseCode::kPolicyViolation, "authentication timed out");
    });
    auto first = co_await socket->Read();
    deadline.cancel();
    if (!first) co_return http::Response{};
    Error refused{ErrorCode::kUnauthenticated, "the first message must be {\"type\":\"auth\",\"token\":...}"};
    auto parsed = ParseJson(http::ThreadJsonParser(), *first);
    std::string_view type, token;
    if (parsed && (*parsed)["type"].get(type) == simdjson::SUCCESS && type == "auth" &&
        (*parsed)["token"].get(token) == simdjson::SUCCESS) {
      auto authenticated = co_await guard_.Authenticate(token, Access::kUser);
      if (authenticated) {
        principal = std::move(*authenticated);
      } else {
        refused = authenticated.error();
      }
    }
    if (!principal) {
      std::string json = ErrorJson({}, refused);
      co_await socket->Send(std::move(json));
      co_await socket->Close(CloseCode::kPolicyViolation, "unauthorized");
      co_return http::Response{};
    }
  }

  auto registration = std::make_shared<Registration>();
  registration->user_id = principal->user_id;
  registration->credential_id = principal->api_key_id;
  registration->executor = executor;
  registration->close = [socket] { socket->CloseSoon(CloseCode::kPolicyViolation, "credentials revoked"); };
  {
    std::lock_guard lock(mutex_);
    std::erase_if(sessions_, [](const auto& weak) { return weak.expired(); });
    sessions_.push_back(registration);
  }
  Session session(*this, *socket, std::move(*principal));
  session.socket_executor_ = executor;
  co_await session.Run();
  co_return http::Response{};
}

void ChatSocket::Revoke(std::string_view user_id, std::string_view credential_id) {
  std::lock_guard lock(mutex_);
  for (const auto& weak : sessions_) {
    auto registration = weak.lock();
    if (!registration || registration->user_id != user_id) continue;
    if (!credential_id.empty() && registration->credential_id != credential_id) continue;
    // Runs on the socket's thread, and only while its handler still holds the registration.
    asio::post(registration->executor, [weak] {
      if (auto live = weak.lock()) live->close();
    });
  }
}

}  // namespace chatd::api

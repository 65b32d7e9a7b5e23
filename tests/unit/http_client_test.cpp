// The outbound HTTP client against a small scripted server on loopback (plain TCP or TLS,
// its own thread and io_context), so the client is tested over real sockets: pooling,
// chunked streaming both ways, every timeout, cancel, size limits, TLS verification with
// a throwaway CA made by the openssl CLI, and the destination address policy.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "run_task.hpp"

#include "core/asio.hpp"
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>

#include "http/client.hpp"

namespace chatd::http {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;
using tcp = asio::ip::tcp;
using boost::system::error_code;

using chatd::testing::RunTask;

Task<void> Sleep(milliseconds ms) {
  asio::steady_timer timer(co_await asio::this_coro::executor, ms);
  error_code ec;
  co_await timer.async_wait(asio::redirect_error(kUseAwaitable, ec));
}

// ---------------------------------------------------------------- the scripted server

struct SeenRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;
};

// One accepted connection, plain or TLS.
class ServerConnection {
 public:
  ServerConnection(tcp::socket socket, asio::ssl::context* tls) {
    if (tls != nullptr) {
      tls_.emplace(std::move(socket), *tls);
    } else {
      plain_.emplace(std::move(socket));
    }
  }

  Task<bool> Handshake() {
    if (!tls_) co_return true;
    error_code ec;
    co_await tls_->async_handshake(asio::ssl::stream_base::server, asio::redirect_error(kUseAwaitable, ec));
    co_return !ec;
  }

  Task<bool> Write(std::string data) {
    error_code ec;
    if (tls_) {
      co_await asio::async_write(*tls_, asio::buffer(data), asio::redirect_error(kUseAwaitable, ec));
    } else {
      co_await asio::async_write(*plain_, asio::buffer(data), asio::redirect_error(kUseAwaitable, ec));
    }
    co_return !ec;
  }

  // The bytes up to and including `delimiter`; nullopt when the client went away.
  Task<std::optional<std::string>> ReadUntil(std::string_view delimiter) {
    error_code ec;
    std::size_t n = 0;
    if (tls_) {
      n = co_await asio::async_read_until(*tls_, asio::dynamic_buffer(buffer_), delimiter,
                                          asio::redirect_error(kUseAwaitable, ec));
    } else {
      n = co_await asio::async_read_until(*plain_, asio::dynamic_buffer(buffer_), delimiter,
                                          asio::redirect_error(kUseAwaitable, ec));
    }
    if (ec) co_return std::nullopt;
    std::string out = buffer_.substr(0, n);
    buffer_.erase(0, n);
    co_return out;
  }

  Task<std::optional<std::string>> ReadExactly(std::size_t size) {
    error_code ec;
    if (buffer_.size() < size) {
      const std::size_t missing = size - buffer_.size();
      if (tls_) {
        co_await asio::async_read(*tls_, asio::dynamic_buffer(buffer_), asio::transfer_exactly(missing),
                                  asio::redirect_error(kUseAwaitable, ec));
      } else {
        co_await asio::async_read(*plain_, asio::dynamic_buffer(buffer_), asio::transfer_exactly(missing),
                                  asio::redirect_error(kUseAwaitable, ec));
      }
    }
    if (ec) co_return std::nullopt;
    std::string out = buffer_.substr(0, size);
    buffer_.erase(0, size);
    co_return out;
  }

  void Close() {
    error_code ec;
    lowest().close(ec);
  }

  tcp::socket& lowest() { return tls_ ? tls_->next_layer() : *plain_; }

 private:
  std::optional<tcp::socket> plain_;
  std::optional<asio::ssl::stream<tcp::socket>> tls_;
  std::string buffer_;
};

// Answers by target path: the routes below. Counts connections; records requests.
class TestServer {
 public:
  explicit TestServer(asio::ssl::context* tls = nullptr) : tls_(tls), acceptor_(io_) {
    const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, Accept(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TestServer() {
    io_.stop();
    thread_.join();
  }

  std::uint16_t port() const { return port_; }
  std::string Url(std::string_view path, std::string_view host = "127.0.0.1") const {
    return std::string(tls_ ? "https://" : "http://") + std::string(host) + ":" + std::to_string(port_) +
           std::string(path);
  }
  int accepted() const { return accepted_.load(); }
  int closed() const { return closed_.load(); }
  std::vector<SeenRequest> requests() {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  Task<void> Accept() {
    while (true) {
      error_code ec;
      tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(kUseAwaitable, ec));
      if (ec) co_return;
      accepted_.fetch_add(1);
      asio::co_spawn(io_, Serve(std::make_shared<ServerConnection>(std::move(socket), tls_)), asio::detached);
    }
  }

  Task<void> Serve(std::shared_ptr<ServerConnection> connection) {
    struct Count {
      std::atomic<int>& closed;
      ~Count() { closed.fetch_add(1); }
    } count{closed_};
    if (!co_await connection->Handshake()) co_return;
    while (true) {
      auto head = co_await connection->ReadUntil("\r\n\r\n");
      if (!head) co_return;
      SeenRequest request;
      const std::size_t line_end = head->find("\r\n");
      const std::string line = head->substr(0, line_end);
      request.method = line.substr(0, line.find(' '));
      request.target = line.substr(request.method.size() + 1, line.rfind(' ') - request.method.size() - 1);
      std::size_t pos = line_end + 2;
      while (pos < head->size() - 2) {
        const std::size_t end = head->find("\r\n", pos);
        const std::string field = head->substr(pos, end - pos);
        std::string name = field.substr(0, field.find(':'));
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        request.headers[name] = field.substr(field.find(':') + 2);
        pos = end + 2;
      }
      if (request.headers.contains("content-length")) {
        auto body = co_await connection->ReadExactly(std::stoul(request.headers["content-length"]));
        if (!body) co_return;
        request.body = *body;
      } else if (request.headers["transfer-encoding"] == "chunked") {
        while (true) {
          auto size_line = co_await connection->ReadUntil("\r\n");
          if (!size_line) co_return;
          const std::size_t size = std::stoul(*size_line, nullptr, 16);
          auto data = co_await connection->ReadExactly(size + 2);
          if (!data) co_return;
          if (size == 0) break;
          request.body += data->substr(0, size);
        }
      }
      {
        std::lock_guard lock(mutex_);
        requests_.push_back(request);
      }
      if (!co_await Answer(*connection, request)) co_return;
    }
  }

  static std::string Chunk(std::string_view data) {
    char size[32];
    std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
    return std::string(size) + std::string(data) + "\r\n";
  }

  // Writes the answer; false to close the connection.
  Task<bool> Answer(ServerConnection& connection, const SeenRequest& request) {
    const std::string path = request.target.substr(0, request.target.find('?'));
    if (path == "/hello") co_return co_await connection.Write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    if (path == "/echo") {
      co_return co_await connection.Write("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(request.body.size()) +
                                          "\r\n\r\n" + request.body);
    }
    if (path == "/hello-then-close") {  // keep-alive by its head, then closed at once
      co_await connection.Write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
      co_return false;
    }
    if (path == "/close") {
      co_await connection.Write("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
      co_return false;
    }
    if (path == "/chunked") {  // five chunks 30 ms apart
      if (!co_await connection.Write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")) co_return false;
      for (int i = 0; i < 5; ++i) {
        co_await Sleep(milliseconds(30));
        if (!co_await connection.Write(Chunk("part" + std::to_string(i) + ";"))) co_return false;
      }
      co_return co_await connection.Write("0\r\n\r\n");
    }
    if (path == "/slow-head") {
      co_await Sleep(milliseconds(400));
      co_return co_await connection.Write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate");
    }
    if (path == "/stall") {  // a head and one chunk, then silence until the client leaves
      co_await connection.Write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + Chunk("first"));
      co_await connection.ReadUntil("\r\n\r\n");
      co_return false;
    }
    if (path == "/trickle") {  // a chunk every 100 ms, forever
      co_await connection.Write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
      while (co_await connection.Write(Chunk("."))) co_await Sleep(milliseconds(100));
      co_return false;
    }
    if (path == "/trickle-then-stall") {  // five chunks 100 ms apart, then silence
      co_await connection.Write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
      for (int i = 0; i < 5; ++i) {
        co_await Sleep(milliseconds(100));
        if (!co_await connection.Write(Chunk("."))) co_return false;
      }
      co_await connection.ReadUntil("\r\n\r\n");
      co_return false;
    }
    if (path == "/big") {
      co_return co_await connection.Write("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + std::string(100000, 'x'));
    }
    if (path == "/big-chunked") {
      co_await connection.Write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
      for (int i = 0; i < 10; ++i) {
        if (!co_await connection.Write(Chunk(std::string(10000, 'y')))) co_return false;
      }
      co_return co_await connection.Write("0\r\n\r\n");
    }
    if (path == "/huge-header") {
      co_return co_await connection.Write("HTTP/1.1 200 OK\r\nX-Big: " + std::string(20000, 'h') +
                                          "\r\nContent-Length: 0\r\n\r\n");
    }
    co_return co_await connection.Write("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  }

  asio::io_context io_{1};
  asio::ssl::context* tls_;
  tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<int> accepted_{0};
  std::atomic<int> closed_{0};
  std::mutex mutex_;
  std::vector<SeenRequest> requests_;
};

std::unique_ptr<Client> MakeClient(ClientConfig config = {}) {
  auto client = Client::Create(std::move(config));
  EXPECT_TRUE(client) << client.error().message;
  return std::move(*client);
}

ClientRequest Get(std::string url) { return ClientRequest{.method = Method::kGet, .url = std::move(url)}; }

// Sends and reads the whole body: "status body", or the error's code and message.
// Takes the request by reference: inside coroutines, callers pass named requests (g++ 12
// destroys temporaries twice in a full-expression holding a co_await).
Task<std::string> Fetch(Client& client, const ClientRequest& request, std::size_t max_bytes = 1 << 20) {
  auto call = co_await client.Send(request);
  if (!call) co_return "error " + std::string(ErrorCodeName(call.error().code)) + ": " + call.error().message;
  auto body = co_await (*call)->ReadAll(max_bytes);
  if (!body) co_return "error " + std::string(ErrorCodeName(body.error().code)) + ": " + body.error().message;
  co_return std::to_string((*call)->status()) + " " + *body;
}

// ---------------------------------------------------------------------------- tests

TEST(HttpUrl, ParsesSchemesHostsPortsAndTargets) {
  auto url = ParseUrl("https://api.openai.com/v1");
  ASSERT_TRUE(url);
  EXPECT_TRUE(url->tls);
  EXPECT_EQ(url->host, "api.openai.com");
  EXPECT_EQ(url->port, 443);
  EXPECT_EQ(url->target, "/v1");
  EXPECT_EQ(url->Authority(), "api.openai.com");

  url = ParseUrl("http://[::1]:11434?x=1#frag");
  ASSERT_TRUE(url);
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, 11434);
  EXPECT_EQ(url->target, "/?x=1");
  EXPECT_EQ(url->Authority(), "[::1]:11434");

  for (const char* bad : {"ftp://x", "http://", "http://:80/", "http://h:0/", "http://h:99999/", "http://u:p@h/",
                          "http://h:8a/", "localhost:8080"}) {
    EXPECT_FALSE(ParseUrl(bad)) << bad;
  }
}

TEST(HttpAddressPolicy, RefusesLinkLocalAndMetadataUnlessAllowed) {
  const AddressPolicy strict;
  for (const char* refused : {"169.254.169.254", "169.254.0.1", "fe80::1", "fd00:ec2::254", "100.100.100.200",
                              "::ffff:169.254.169.254", "not-an-address"}) {
    EXPECT_FALSE(AddressAllowed(refused, strict)) << refused;
  }
  for (const char* allowed : {"127.0.0.1", "::1", "10.0.0.5", "192.168.1.2", "172.16.0.1", "100.100.100.201",
                              "8.8.8.8", "fd00::1", "2001:db8::1"}) {
    EXPECT_TRUE(AddressAllowed(allowed, strict)) << allowed;
  }
  EXPECT_TRUE(AddressAllowed("169.254.169.254", AddressPolicy{.allow_link_local = true}));
}

TEST(HttpClient, RefusesAForbiddenDestinationBeforeConnecting) {
  auto client = MakeClient(ClientConfig{.connect_timeout = milliseconds(300)});
  for (const char* url : {"http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://100.100.100.200/"}) {
    const std::string got = RunTask(Fetch(*client, Get(url)));
    EXPECT_EQ(got.rfind("error permission_denied: refused to connect", 0), 0u) << got;
  }
  // Allowed by config: the policy no longer decides (the connection itself fails or times out).
  auto permissive = MakeClient(ClientConfig{.connect_timeout = milliseconds(300), .address_policy = {.allow_link_local = true}});
  const std::string got = RunTask(Fetch(*permissive, Get("http://169.254.169.254:9/")));
  EXPECT_EQ(got.find("permission_denied"), std::string::npos) << got;
}

TEST(HttpClient, SendsTheRequestAndReadsAWholeResponse) {
  TestServer server;
  auto client = MakeClient();
  ClientRequest request{.method = Method::kPost,
                        .url = server.Url("/echo?q=1"),
                        .headers = {{"Authorization", "Bearer k"}, {"Accept-Encoding", "gzip"}, {"Host", "evil"}},
                        .body = R"({"x":1})"};
  EXPECT_EQ(RunTask(Fetch(*client, request)), R"(200 {"x":1})");
  const auto seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].target, "/echo?q=1");
  EXPECT_EQ(seen[0].headers.at("host"), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(seen[0].headers.at("accept-encoding"), "identity");
  EXPECT_EQ(seen[0].headers.at("authorization"), "Bearer k");
  EXPECT_EQ(seen[0].headers.at("content-length"), "7");
}

TEST(HttpClient, ReusesAConnectionOnlyAfterItsResponseWasRead) {
  TestServer server;
  auto client = MakeClient();
  RunTask([&]() -> Task<int> {
    const ClientRequest hello = Get(server.Url("/hello"));
    const ClientRequest chunked = Get(server.Url("/chunked"));
    for (int i = 0; i < 3; ++i) EXPECT_EQ(co_await Fetch(*client, hello), "200 hello");
    EXPECT_EQ(server.accepted(), 1);
    {
      // Takes the pooled connection; its body is left unread, so it cannot serve again.
      auto unread = co_await client->Send(chunked);
      EXPECT_TRUE(unread);
      EXPECT_EQ(server.accepted(), 1);
    }
    EXPECT_EQ(co_await Fetch(*client, hello), "200 hello");
    co_return 0;
  }());
  EXPECT_EQ(server.accepted(), 2);  // the last /hello needed a new connection
}

TEST(HttpClient, DoesNotReuseConnectionsTheServerClosesOrWhenThePoolIsOff) {
  TestServer server;
  auto client = MakeClient();
  RunTask([&]() -> Task<int> {
    const ClientRequest close = Get(server.Url("/close"));
    const ClientRequest hello = Get(server.Url("/hello"));
    EXPECT_EQ(co_await Fetch(*client, close), "200 ok");
    EXPECT_EQ(co_await Fetch(*client, hello), "200 hello");
    co_return 0;
  }());
  EXPECT_EQ(server.accepted(), 2);

  TestServer other;
  auto unpooled = MakeClient(ClientConfig{.max_idle_per_origin = 0});
  RunTask([&]() -> Task<int> {
    const ClientRequest hello = Get(other.Url("/hello"));
    for (int i = 0; i < 3; ++i) EXPECT_EQ(co_await Fetch(*unpooled, hello), "200 hello");
    co_return 0;
  }());
  EXPECT_EQ(other.accepted(), 3);
}

TEST(HttpClient, RetriesOnANewConnectionWhenAFreshlyPooledOneWasClosed) {
  // Taken again within a second, the pooled connection is not checked with poll(): the
  // request goes out on it, meets the close before any response byte, and is sent again
  // on a new connection.
  TestServer server;
  auto client = MakeClient();
  RunTask([&]() -> Task<int> {
    const ClientRequest closing = Get(server.Url("/hello-then-close"));
    const ClientRequest hello = Get(server.Url("/hello"));
    EXPECT_EQ(co_await Fetch(*client, closing), "200 hello");
    co_await Sleep(milliseconds(20));  // the server's close has arrived
    EXPECT_EQ(co_await Fetch(*client, hello), "200 hello");
    co_return 0;
  }());
  EXPECT_EQ(server.accepted(), 2);
  EXPECT_EQ(server.requests().size(), 2u);  // the retried request was never processed twice
}

TEST(HttpClient, KeepsAtMostMaxIdleConnectionsPerOrigin) {
  TestServer server;
  auto client = MakeClient(ClientConfig{.max_idle_per_origin = 1});
  RunTask([&]() -> Task<int> {
    const ClientRequest hello = Get(server.Url("/hello"));
    for (int round = 0; round < 2; ++round) {
      // Three calls open at once, then all read: three connections go back to the pool.
      std::vector<std::unique_ptr<ClientCall>> open;
      for (int i = 0; i < 3; ++i) {
        auto call = co_await client->Start(hello);
        EXPECT_TRUE(call);
        if (call) open.push_back(std::move(*call));
      }
      for (auto& call : open) {
        EXPECT_TRUE(co_await call->ReadHead());
        EXPECT_TRUE(co_await call->ReadAll(100));
      }
    }
    co_return 0;
  }());
  EXPECT_EQ(server.accepted(), 5);  // only one of the first round's three was kept
}

TEST(HttpClient, AnIdleConnectionPastItsExpiryIsNotReused) {
  TestServer server;
  auto client = MakeClient(ClientConfig{.idle_expiry = milliseconds(50)});
  RunTask([&]() -> Task<int> {
    const ClientRequest hello = Get(server.Url("/hello"));
    EXPECT_EQ(co_await Fetch(*client, hello), "200 hello");
    co_await Sleep(milliseconds(120));
    EXPECT_EQ(co_await Fetch(*client, hello), "200 hello");
    co_return 0;
  }());
  EXPECT_EQ(server.accepted(), 2);
}

TEST(HttpClient, StreamsAChunkedBodyPieceByPiece) {
  TestServer server;
  auto client = MakeClient();
  const auto pieces = RunTask([&]() -> Task<std::vector<std::string>> {
    std::vector<std::string> out;
    const ClientRequest chunked = Get(server.Url("/chunked"));
    auto call = co_await client->Send(chunked);
    EXPECT_TRUE(call);
    if (!call) co_return out;
    EXPECT_EQ((*call)->status(), 200);
    EXPECT_EQ((*call)->Header("TRANSFER-ENCODING"), "chunked");
    while (true) {
      auto piece = co_await (*call)->ReadSome();
      EXPECT_TRUE(piece);
      if (!piece || !*piece) break;
      out.emplace_back(**piece);
    }
    co_return out;
  }());
  std::string joined;
  for (const auto& piece : pieces) joined += piece;
  EXPECT_EQ(joined, "part0;part1;part2;part3;part4;");
  EXPECT_GE(pieces.size(), 3u);  // the chunks came 30 ms apart, so they were read as they came
}

TEST(HttpClient, StreamsARequestBody) {
  TestServer server;
  auto client = MakeClient();
  const std::string got = RunTask([&]() -> Task<std::string> {
    // A named request: g++ 12 destroys temporaries twice in a full-expression with a co_await.
    const ClientRequest request{.method = Method::kPost, .url = server.Url("/echo"), .stream_body = true};
    auto call = co_await client->Start(request);
    if (!call) co_return call.error().message;
    for (const char* piece : {"stream", "ed ", "", "body"}) {
      auto written = co_await (*call)->WriteBody(piece);
      if (!written) co_return written.error().message;
    }
    auto head = co_await (*call)->ReadHead();
    if (!head) co_return head.error().message;
    auto body = co_await (*call)->ReadAll(1000);
    co_return body ? *body : body.error().message;
  }());
  EXPECT_EQ(got, "streamed body");
  EXPECT_EQ(server.requests().at(0).headers.at("transfer-encoding"), "chunked");
}

TEST(HttpClient, RejectsBodiesAndHeadersOverTheirLimits) {
  TestServer server;
  auto client = MakeClient(ClientConfig{.max_header_size = 8 * 1024});
  EXPECT_EQ(RunTask(Fetch(*client, Get(server.Url("/big")), 1000)).rfind("error upstream_unavailable: the response body", 0), 0u);
  EXPECT_EQ(RunTask(Fetch(*client, Get(server.Url("/big-chunked")), 50'000)).rfind("error upstream_unavailable: the response body", 0), 0u);
  EXPECT_EQ(RunTask(Fetch(*client, Get(server.Url("/big")), 100'000)).size(), 4u + 100'000u);
  // Unannounced length: ReadAll's room grows from 4 KiB to the whole body, up to the limit.
  EXPECT_EQ(RunTask(Fetch(*client, Get(server.Url("/big-chunked")), 100'000)), "200 " + std::string(100'000, 'y'));
  EXPECT_EQ(RunTask(Fetch(*client, Get(server.Url("/big-chunked")), 99'999)).rfind("error upstream_unavailable: the response body", 0), 0u);
  EXPECT_EQ(RunTask(Fetch(*client, Get(server.Url("/huge-header")))).rfind("error upstream_unavailable: the response header", 0), 0u);
}

TEST(HttpClient, TimesOutWaitingForTheHeadForDataAndOverall) {
  TestServer server;
  auto client = MakeClient(ClientConfig{.first_byte_timeout = milliseconds(150), .idle_timeout = milliseconds(200)});
  auto started = steady_clock::now();
  std::string got = RunTask(Fetch(*client, Get(server.Url("/slow-head"))));
  EXPECT_EQ(got.rfind("error upstream_timeout: no response head from", 0), 0u) << got;
  EXPECT_LT(steady_clock::now() - started, milliseconds(390));

  ClientRequest patient = Get(server.Url("/slow-head"));
  patient.first_byte_timeout = milliseconds(2000);
  EXPECT_EQ(RunTask(Fetch(*client, patient)), "200 late");

  started = steady_clock::now();
  got = RunTask(Fetch(*client, Get(server.Url("/stall"))));
  EXPECT_EQ(got.rfind("error upstream_timeout: no data from", 0), 0u) << got;
  EXPECT_LT(steady_clock::now() - started, milliseconds(2000));

  // Data keeps coming (so the idle timeout never fires), but the whole exchange is bounded.
  ClientRequest bounded = Get(server.Url("/trickle"));
  bounded.total_timeout = milliseconds(500);
  started = steady_clock::now();
  got = RunTask(Fetch(*client, bounded));
  EXPECT_EQ(got.rfind("error upstream_timeout: the request to", 0), 0u) << got;
  const auto took = steady_clock::now() - started;
  EXPECT_GE(took, milliseconds(450));
  EXPECT_LT(took, milliseconds(1500));
}

// The body's idle timeout is kept by one watchdog timer that data moves along: it fires
// early while chunks keep coming (and must sleep again), then for real once they stop.
TEST(HttpClient, TheIdleTimeoutRestartsWithEachPieceAndFiresWhenTheyStop) {
  TestServer server;
  auto client = MakeClient(ClientConfig{.idle_timeout = milliseconds(250)});
  const auto started = steady_clock::now();
  const std::string got = RunTask(Fetch(*client, Get(server.Url("/trickle-then-stall"))));
  const auto took = steady_clock::now() - started;
  EXPECT_EQ(got.rfind("error upstream_timeout: no data from", 0), 0u) << got;
  EXPECT_GE(took, milliseconds(500 + 250));  // the five pieces, then the idle timeout
  EXPECT_LT(took, milliseconds(2000));
}

TEST(HttpClient, ACallersDeadlineBoundsARead) {
  TestServer server;
  auto client = MakeClient();
  const std::string got = RunTask([&]() -> Task<std::string> {
    const ClientRequest stall = Get(server.Url("/stall"));
    auto call = co_await client->Send(stall);
    if (!call) co_return call.error().message;
    auto first = co_await (*call)->ReadSome();
    if (!first || !*first) co_return "no first piece";
    auto next = co_await (*call)->ReadSome(steady_clock::now() + milliseconds(100));
    co_return next ? "data" : std::string(ErrorCodeName(next.error().code));
  }());
  EXPECT_EQ(got, "upstream_timeout");
}

TEST(HttpClient, CancelEndsAPendingReadAtOnce) {
  TestServer server;
  auto client = MakeClient();
  const auto started = steady_clock::now();
  const std::string got = RunTask([&]() -> Task<std::string> {
    const ClientRequest stall = Get(server.Url("/stall"));
    auto call = co_await client->Send(stall);
    if (!call) co_return call.error().message;
    ClientCall* open = call->get();
    asio::steady_timer timer(co_await asio::this_coro::executor, milliseconds(100));
    timer.async_wait([open](const error_code&) { open->Cancel(); });
    auto first = co_await open->ReadSome();
    auto next = co_await open->ReadSome();  // pending when Cancel() runs
    auto later = co_await open->ReadSome();
    if (!first || next || later) co_return "unexpected";
    co_return next.error().message + "," + later.error().message;
  }());
  EXPECT_EQ(got, "cancelled,cancelled");
  EXPECT_LT(steady_clock::now() - started, milliseconds(1000));
  // The server sees the connection closed.
  const auto deadline = steady_clock::now() + std::chrono::seconds(5);
  while (server.closed() < 1 && steady_clock::now() < deadline) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(server.closed(), 1);
}

TEST(HttpClient, ACancelSignalAbortsSendWhileItWaitsForTheHead) {
  TestServer server;
  auto client = MakeClient(ClientConfig{.first_byte_timeout = milliseconds(5000)});
  CancelSignal cancel;
  const auto started = steady_clock::now();
  const std::string got = RunTask([&]() -> Task<std::string> {
    ClientRequest slow = Get(server.Url("/slow-head"));
    slow.cancel = &cancel;
    asio::steady_timer timer(co_await asio::this_coro::executor, milliseconds(100));
    timer.async_wait([&cancel](const error_code&) { cancel.Cancel(); });
    auto call = co_await client->Send(slow);
    co_return call ? std::string("answered") : call.error().message;
  }());
  EXPECT_EQ(got, "cancelled");
  EXPECT_LT(steady_clock::now() - started, milliseconds(1000));
  const auto deadline = steady_clock::now() + std::chrono::seconds(5);
  while (server.closed() < 1 && steady_clock::now() < deadline) std::this_thread::sleep_for(milliseconds(10));
  EXPECT_EQ(server.closed(), 1);  // the upstream sees the abort

  // Cancelled before it starts: nothing is sent.
  const std::string never = RunTask([&]() -> Task<std::string> {
    ClientRequest get = Get(server.Url("/"));
    get.cancel = &cancel;
    auto call = co_await client->Send(get);
    co_return call ? std::string("answered") : call.error().message;
  }());
  EXPECT_EQ(never, "cancelled");
  EXPECT_EQ(server.accepted(), 1);
}

TEST(HttpClient, ConnectTimeoutBoundsAConnectNobodyAnswers) {
  // A listener that never accepts, its backlog filled: the kernel drops further SYNs, so
  // a connect hangs as it does towards a black-holed address.
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  acceptor.listen(0);
  std::vector<tcp::socket> fillers;
  for (int i = 0; i < 4; ++i) {
    fillers.emplace_back(io);
    // Asio starts the (non-blocking) connect at once; `io` never runs, so nothing waits.
    fillers.back().async_connect(acceptor.local_endpoint(), [](const error_code&) {});
  }
  auto client = MakeClient(ClientConfig{.connect_timeout = milliseconds(300)});
  const auto started = steady_clock::now();
  const std::string got =
      RunTask(Fetch(*client, Get("http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/")));
  EXPECT_EQ(got.rfind("error upstream_timeout: connecting to", 0), 0u) << got;
  EXPECT_LT(steady_clock::now() - started, milliseconds(1500));
}

TEST(HttpClient, ConnectionRefusedIsUpstreamUnavailable) {
  // A port that was free a moment ago: nothing listens there now.
  std::uint16_t port = 0;
  {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = acceptor.local_endpoint().port();
  }
  auto client = MakeClient();
  const std::string got = RunTask(Fetch(*client, Get("http://127.0.0.1:" + std::to_string(port) + "/")));
  EXPECT_EQ(got.rfind("error upstream_unavailable: cannot connect to", 0), 0u) << got;
}

// ------------------------------------------------------------------------------- TLS

// A throwaway CA and a server certificate for "localhost" only, made with the openssl CLI.
class HttpClientTls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::temp_directory_path() / ("chatd-tls-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    const std::string d = dir_.string();
    const std::string script =
        "cd '" + d + "' && "
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
        "-subj /CN=chatd-test-ca -addext basicConstraints=critical,CA:TRUE "
        "-addext keyUsage=critical,keyCertSign,cRLSign -keyout ca.key -out ca.pem && "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost "
        "-keyout server.key -out server.csr && "
        "printf 'subjectAltName=DNS:localhost\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' > ext.cnf && "
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile ext.cnf "
        "-out server.pem";
    ASSERT_EQ(std::system((script + " >/dev/null 2>&1").c_str()), 0) << "openssl failed";
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  static asio::ssl::context ServerContext() {
    asio::ssl::context context(asio::ssl::context::tls_server);
    context.use_certificate_chain_file((dir_ / "server.pem").string());
    context.use_private_key_file((dir_ / "server.key").string(), asio::ssl::context::pem);
    return context;
  }
  static std::string CaFile() { return (dir_ / "ca.pem").string(); }

  static inline std::filesystem::path dir_;
};

TEST_F(HttpClientTls, TalksToAServerItsCaVouchesFor) {
  auto context = ServerContext();
  TestServer server(&context);
  auto client = MakeClient(ClientConfig{.extra_ca_file = CaFile()});
  RunTask([&]() -> Task<int> {
    const ClientRequest hello = Get(server.Url("/hello", "localhost"));
    const ClientRequest chunked = Get(server.Url("/chunked", "localhost"));
    EXPECT_EQ(co_await Fetch(*client, hello), "200 hello");
    EXPECT_EQ(co_await Fetch(*client, chunked), "200 part0;part1;part2;part3;part4;");
    co_return 0;
  }());
  EXPECT_EQ(server.accepted(), 1);  // pooled over TLS too
}

TEST_F(HttpClientTls, RejectsAWrongHostNameAndAnUnknownCa) {
  auto context = ServerContext();
  TestServer server(&context);
  auto client = MakeClient(ClientConfig{.extra_ca_file = CaFile()});
  // The certificate names localhost, not 127.0.0.1.
  std::string got = RunTask(Fetch(*client, Get(server.Url("/hello", "127.0.0.1"))));
  EXPECT_EQ(got.rfind("error upstream_unavailable: TLS handshake with", 0), 0u) << got;
  EXPECT_NE(got.find("certificate verify failed"), std::string::npos) << got;
  // Without the extra CA, the system store does not know it.
  auto system_only = MakeClient();
  got = RunTask(Fetch(*system_only, Get(server.Url("/hello", "localhost"))));
  EXPECT_EQ(got.rfind("error upstream_unavailable: TLS handshake with", 0), 0u) << got;
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(HttpClientTls, AMissingCaFileIsAConfigurationError) {
  auto client = Client::Create(ClientConfig{.extra_ca_file = (dir_ / "nope.pem").string()});
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace chatd::http

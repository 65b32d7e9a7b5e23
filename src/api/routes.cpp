#include "api/routes.hpp"

#include <string>

namespace chatd::api {

using accounts::Principal;
using http::Method;
using http::Request;

void AddRoutes(http::Router& router, Services& services, std::string_view prefix) {
  auto& ops = services.operations;
  auto& guard = services.guard;
  auto& accounts = services.accounts;
  auto& conversations = services.conversations;
  auto& messages = services.messages;
  auto& chat = services.chat;
  auto& search = services.search;
  auto& archive = services.archive;
  auto& usage = services.usage;
  const std::string api(prefix);

  // Public: method, path, handler.
  router.Add(Method::kGet, "/health", [&ops](Request& r) { return ops.Health(r); });
  router.Add(Method::kGet, "/ready", [&ops](Request& r) { return ops.Ready(r); });
  router.Add(Method::kGet, "/metrics", [&ops](Request& r) { return ops.Metrics(r); });
  // Authenticates inside: browsers cannot send headers on an upgrade (api/chat_socket.hpp).
  ChatSocket& socket = services.chat_socket;
  router.Add(Method::kGet, "/ws", [&socket](Request& r) { return socket.Serve(r); }, {.websocket = true});
  router.Add(Method::kPost, api + "/auth/register", [&accounts](Request& r) { return accounts.Register(r); });
  router.Add(Method::kPost, api + "/auth/login", [&accounts](Request& r) { return accounts.Login(r); });
  router.Add(Method::kPost, api + "/auth/refresh", [&accounts](Request& r) { return accounts.Refresh(r); });
  router.Add(Method::kPost, api + "/auth/logout", [&accounts](Request& r) { return accounts.Logout(r); });

  // The OpenAI-compatible surface, at /v1 whatever API_V1_STR is (SDKs append their paths to
  // a base URL ending in /v1). Authenticates inside, to answer in OpenAI's error shape.
  auto& gateway = services.gateway;
  const http::RouteOptions gateway_body{.body_limit = kMaxGatewayBody};
  router.Add(Method::kPost, "/v1/chat/completions", [&gateway](Request& r) { return gateway.ChatCompletions(r); },
             gateway_body);
  router.Add(Method::kPost, "/v1/messages", [&gateway](Request& r) { return gateway.Messages(r); }, gateway_body);
  router.Add(Method::kPost, "/v1/embeddings", [&gateway](Request& r) { return gateway.Embeddings(r); }, gateway_body);
  router.Add(Method::kGet, "/v1/models", [&gateway](Request& r) { return gateway.ListModels(r); });
  router.Add(Method::kGet, "/v1/models/{id}", [&gateway](Request& r) { return gateway.GetModel(r); });
  // Hugging Face style ids ("meta-llama/Llama-3.1-8B-Instruct", as vLLM serves them) when
  // the client does not escape the slash (the SDKs send %2F, which {id} takes).
  router.Add(Method::kGet, "/v1/models/{id}/{name}", [&gateway](Request& r) { return gateway.GetModel(r); });

  // Protected: method, path, who may call, handler(request, principal).
  auto protect = [&]<typename Api>(Method method, const std::string& path, Access access, Api& adapter,
                                   Task<http::Response> (Api::*handler)(Request&, const Principal&)) {
    router.Add(method, path, guard.Protect(access, [&adapter, handler](Request& r, const Principal& p) {
      return (adapter.*handler)(r, p);
    }));
  };
  protect(Method::kGet, api + "/users/me", Access::kUser, accounts, &AccountsApi::GetMe);
  protect(Method::kPatch, api + "/users/me", Access::kUser, accounts, &AccountsApi::UpdateMe);
  protect(Method::kDelete, api + "/users/me", Access::kSession, accounts, &AccountsApi::DeleteMe);
  protect(Method::kPost, api + "/users/me/password", Access::kSession, accounts, &AccountsApi::ChangePassword);
  protect(Method::kGet, api + "/api-keys", Access::kUser, accounts, &AccountsApi::ListApiKeys);
  protect(Method::kPost, api + "/api-keys", Access::kSession, accounts, &AccountsApi::CreateApiKey);
  protect(Method::kDelete, api + "/api-keys/{id}", Access::kUser, accounts, &AccountsApi::RevokeApiKey);
  // A key must not raise its own limits: changing them takes an access token.
  protect(Method::kPatch, api + "/api-keys/{id}", Access::kSession, accounts, &AccountsApi::UpdateApiKey);
  protect(Method::kPatch, api + "/admin/api-keys/{id}", Access::kAdmin, accounts, &AccountsApi::AdminUpdateApiKey);
  protect(Method::kGet, api + "/usage", Access::kUser, usage, &UsageApi::Own);
  protect(Method::kGet, api + "/admin/usage", Access::kAdmin, usage, &UsageApi::Admin);
  protect(Method::kGet, api + "/admin/users", Access::kAdmin, accounts, &AccountsApi::AdminListUsers);
  protect(Method::kPatch, api + "/admin/users/{id}", Access::kAdmin, accounts, &AccountsApi::AdminUpdateUser);
  protect(Method::kPost, api + "/conversations", Access::kUser, conversations, &ConversationsApi::Create);
  protect(Method::kGet, api + "/conversations", Access::kUser, conversations, &ConversationsApi::List);
  protect(Method::kGet, api + "/conversations/{id}", Access::kUser, conversations, &ConversationsApi::Get);
  protect(Method::kPatch, api + "/conversations/{id}", Access::kUser, conversations, &ConversationsApi::Update);
  protect(Method::kDelete, api + "/conversations/{id}", Access::kUser, conversations, &ConversationsApi::Delete);
  protect(Method::kGet, api + "/conversations/{id}/messages", Access::kUser, messages, &MessagesApi::ListBranch);
  protect(Method::kPut, api + "/conversations/{id}/current-leaf", Access::kUser, messages, &MessagesApi::SwitchLeaf);
  protect(Method::kPost, api + "/conversations/{id}/messages", Access::kUser, chat, &ChatApi::SendMessage);
  protect(Method::kPost, api + "/conversations/{id}/messages/{mid}/regenerate", Access::kUser, chat,
          &ChatApi::Regenerate);
  protect(Method::kGet, api + "/conversations/{id}/messages/{mid}/stream", Access::kUser, chat, &ChatApi::Resume);
  protect(Method::kPost, api + "/conversations/{id}/messages/{mid}/cancel", Access::kUser, chat, &ChatApi::Cancel);
  protect(Method::kGet, api + "/models", Access::kUser, chat, &ChatApi::ListModels);
  protect(Method::kGet, api + "/search", Access::kUser, search, &SearchApi::Search);
  protect(Method::kGet, api + "/conversations/{id}/export", Access::kUser, archive, &ArchiveApi::Export);
  // An import is a whole conversation: its body may be larger than MAX_BODY_SIZE.
  router.Add(Method::kPost, api + "/conversations/import",
             guard.Protect(Access::kUser, [&archive](Request& r, const Principal& p) { return archive.Import(r, p); }),
             http::RouteOptions{chat::kMaxImportBytes});
}

}  // namespace chatd::api

#pragma once

#include "api/accounts_api.hpp"
#include "api/archive_api.hpp"
#include "api/chat_api.hpp"
#include "api/chat_socket.hpp"
#include "api/conversations_api.hpp"
#include "api/gateway_api.hpp"
#include "api/guard.hpp"
#include "api/messages_api.hpp"
#include "api/operations.hpp"
#include "api/search_api.hpp"
#include "api/usage_api.hpp"
#include "http/router.hpp"

namespace chatd::api {

/// The services the routes call into; built by app/ and owned there.
struct Services {
  Operations& operations;
  Guard& guard;
  AccountsApi& accounts;
  ConversationsApi& conversations;
  MessagesApi& messages;
  ChatApi& chat;
  ChatSocket& chat_socket;
  SearchApi& search;
  ArchiveApi& archive;
  UsageApi& usage;
  GatewayApi& gateway;
};

/// Registers every route of the HTTP surface on `router`: the one table of routes.
/// `prefix` is the app API's prefix (API_V1_STR, "/api/v1").
void AddRoutes(http::Router& router, Services& services, std::string_view prefix = "/api/v1");

}  // namespace chatd::api

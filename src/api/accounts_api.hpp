// HTTP adapters for accounts: parse and validate the request, call AccountService, write
// the response. No SQL and no business rules here.
#pragma once

#include "accounts/account_service.hpp"
#include "api/guard.hpp"
#include "http/message.hpp"

namespace chatd::api {

class AccountsApi {
 public:
  AccountsApi(accounts::AccountService& accounts, Guard& guard) : accounts_(accounts), guard_(guard) {}

  Task<http::Response> Register(http::Request& request);
  Task<http::Response> Login(http::Request& request);
  Task<http::Response> Refresh(http::Request& request);
  Task<http::Response> Logout(http::Request& request);

  Task<http::Response> GetMe(http::Request& request, const accounts::Principal& caller);
  Task<http::Response> UpdateMe(http::Request& request, const accounts::Principal& caller);
  Task<http::Response> ChangePassword(http::Request& request, const accounts::Principal& caller);
  Task<http::Response> DeleteMe(http::Request& request, const accounts::Principal& caller);

  Task<http::Response> ListApiKeys(http::Request& request, const accounts::Principal& caller);
  Task<http::Response> CreateApiKey(http::Request& request, const accounts::Principal& caller);
  Task<http::Response> RevokeApiKey(http::Request& request, const accounts::Principal& caller);
  /// PATCH /api-keys/{id}: the owner changes the key's limits (an access token only).
  Task<http::Response> UpdateApiKey(http::Request& request, const accounts::Principal& caller);

  Task<http::Response> AdminListUsers(http::Request& request, const accounts::Principal& caller);
  Task<http::Response> AdminUpdateUser(http::Request& request, const accounts::Principal& caller);
  /// PATCH /admin/api-keys/{id}: an admin changes the limits of anyone's key.
  Task<http::Response> AdminUpdateApiKey(http::Request& request, const accounts::Principal& caller);

 private:
  accounts::AccountService& accounts_;
  Guard& guard_;
};

}  // namespace chatd::api

#include "api/accounts_api.hpp"


#include "accounts/validation.hpp"
#include "api/json_fields.hpp"
#include "api/pagination.hpp"
#include "core/json.hpp"
#include "http/json_body.hpp"

namespace chatd::api {

using accounts::Principal;

namespace {

void WriteNullable(JsonWriter& json, std::string_view key, std::string_view value) {
  json.Key(key);
  if (value.empty()) json.Null(); else json.String(value);
}

void WriteUser(JsonWriter& json, const accounts::User& user) {
  json.BeginObject()
      .Field("id", user.id)
      .Field("email", user.email)
      .Field("name", user.name)
      .Field("role", accounts::RoleName(user.role))
      .Field("is_active", user.is_active)
      .Field("created_at", user.created_at)
      .Field("updated_at", user.updated_at);
  WriteNullable(json, "last_login_at", user.last_login_at);
  json.EndObject();
}

// The limits of a key (null for each one not set) and its response_cache flag.
void WriteKeyLimits(JsonWriter& json, const accounts::KeyLimits& limits) {
  json.Key("allowed_models");
  if (limits.allowed_models.empty()) {
    json.Null();
  } else {
    json.BeginArray();
    for (const auto& model : limits.allowed_models) json.String(model);
    json.EndArray();
  }
  json.Key("rpm_limit");
  if (limits.rpm)
    json.Int(*limits.rpm);
  else
    json.Null();
  json.Key("tpm_limit");
  if (limits.tpm)
    json.Int(*limits.tpm);
  else
    json.Null();
  json.Key("budget");
  if (limits.budget) {
    json.BeginObject().Key("amount");
    if (limits.budget->unit == accounts::BudgetUnit::kTokens) {
      json.Int(static_cast<std::int64_t>(limits.budget->amount));
    } else {
      json.Double(limits.budget->amount);
    }
    json.Field("unit", accounts::BudgetUnitName(limits.budget->unit))
        .Field("period", accounts::BudgetPeriodName(limits.budget->period))
        .EndObject();
  } else {
    json.Null();
  }
  json.Field("response_cache", limits.response_cache);
}

void WriteApiKey(JsonWriter& json, const accounts::ApiKey& key, std::string_view secret = {}) {
  json.BeginObject().Field("id", key.id);
  if (!secret.empty()) json.Field("key", secret);
  json.Field("name", key.name).Field("prefix", key.prefix).Key("scopes").BeginArray();
  for (const auto& scope : key.scopes) json.String(scope);
  json.EndArray();
  WriteNullable(json, "expires_at", key.expires_at);
  WriteNullable(json, "last_used_at", key.last_used_at);
  json.Field("created_at", key.created_at);
  WriteKeyLimits(json, key.limits);
  json.EndObject();
}

http::Response ApiKeyResponse(const accounts::ApiKey& key) {
  JsonWriter json;
  WriteApiKey(json, key);
  return http::Response::Json(200, std::move(json).str());
}

// The limit fields of a key's JSON: each absent one stays out of the change, a null one
// removes that limit (response_cache, a flag, is true or false).
Expected<accounts::KeyLimitsChange> ReadKeyLimits(const JsonObject& body) {
  accounts::KeyLimitsChange change;
  if (body.IsNull("allowed_models")) {
    change.allowed_models.emplace(std::nullopt);
  } else {
    auto models = body.OptionalStringArray("allowed_models");
    if (!models) return Unexpected{std::move(models).error()};
    if (*models) {
      if ((*models)->empty()) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "allowed_models must name at least one model; null allows every model", "allowed_models");
      }
      change.allowed_models.emplace(std::move(**models));
    }
  }
  for (const auto& [field, target] : {std::pair{"rpm_limit", &change.rpm}, std::pair{"tpm_limit", &change.tpm}}) {
    if (body.IsNull(field)) {
      target->emplace(std::nullopt);
      continue;
    }
    auto value = body.OptionalInt(field);
    if (!value) return Unexpected{std::move(value).error()};
    if (*value) target->emplace(**value);
  }
  if (body.IsNull("budget")) {
    change.budget.emplace(std::nullopt);
  } else {
    auto object = body.OptionalObject("budget");
    if (!object) return Unexpected{std::move(object).error()};
    if (*object) {
      const JsonObject& budget_json = **object;
      auto amount = budget_json.OptionalNumber("amount");
      if (!amount) return Unexpected{std::move(amount).error()};
      if (!*amount) return MakeError(ErrorCode::kInvalidArgument, "budget.amount is required", "budget.amount");
      auto unit_name = budget_json.RequiredString("unit");
      if (!unit_name) return Unexpected{std::move(unit_name).error()};
      const auto unit = accounts::ParseBudgetUnit(*unit_name);
      if (!unit) {
        return MakeError(ErrorCode::kInvalidArgument, "budget.unit must be \"tokens\" or \"usd\"", "budget.unit");
      }
      auto period_name = budget_json.RequiredString("period");
      if (!period_name) return Unexpected{std::move(period_name).error()};
      const auto period = accounts::ParseBudgetPeriod(*period_name);
      if (!period) {
        return MakeError(ErrorCode::kInvalidArgument, "budget.period must be \"day\" or \"month\"", "budget.period");
      }
      change.budget.emplace(accounts::Budget{**amount, *unit, *period});
    }
  }
  if (body.IsNull("response_cache")) {
    return MakeError(ErrorCode::kInvalidArgument, "response_cache must be true or false", "response_cache");
  }
  auto response_cache = body.OptionalBool("response_cache");
  if (!response_cache) return Unexpected{std::move(response_cache).error()};
  change.response_cache = *response_cache;
  return change;
}

http::Response UserResponse(int status, const accounts::User& user) {
  JsonWriter json;
  WriteUser(json, user);
  return http::Response::Json(status, std::move(json).str());
}

http::Response TokensResponse(const accounts::TokenPair& tokens) {
  JsonWriter json;
  json.BeginObject()
      .Field("access_token", tokens.access_token)
      .Field("refresh_token", tokens.refresh_token)
      .Field("token_type", "bearer")
      .Field("expires_in", tokens.expires_in)
      .EndObject();
  auto response = http::Response::Json(200, std::move(json).str());
  response.AddHeader("Cache-Control", "no-store");  // tokens must not be cached (RFC 6749 5.1)
  return response;
}

// The request's JSON object, or the error response to answer with.
Expected<JsonObject> BodyObject(const http::Request& request) {
  auto body = http::ParseJsonBody(request, http::ThreadJsonParser());
  if (!body) return Unexpected{std::move(body).error()};
  return JsonObject::From(*body);
}

// The account bucket's key: the email as the service stores it (trimmed, lower-cased);
// text that is no email at all is used as sent (such a login fails anyway).
std::string AccountBucket(std::string_view email) {
  auto normalized = accounts::NormalizeEmail(email);
  return "login:account:" + (normalized ? *normalized : std::string(email));
}

}  // namespace

Task<http::Response> AccountsApi::Register(http::Request& request) {
  std::vector<std::pair<std::string, std::string>> limit_headers;
  auto refusal = co_await guard_.Limit("login:ip:" + request.client_address, guard_.limits().login, limit_headers);
  if (refusal) co_return std::move(*refusal);
  auto body = BodyObject(request);
  if (!body) co_return ErrorResponse(body.error());
  auto email = body->RequiredString("email");
  if (!email) co_return ErrorResponse(email.error());
  auto password = body->RequiredString("password");
  if (!password) co_return ErrorResponse(password.error());
  auto name = body->OptionalString("name");
  if (!name) co_return ErrorResponse(name.error());
  auto user = co_await accounts_.Register(*email, *password, name->value_or(""));
  if (!user) co_return ErrorResponse(user.error());
  co_return UserResponse(201, *user);
}

Task<http::Response> AccountsApi::Login(http::Request& request) {
  // JSON {email, password}, or the OAuth2 password flow's form fields username/password.
  std::string email, password;
  if (request.ContentType() == "application/x-www-form-urlencoded") {
    auto username = http::FormField(request.body, "username");
    auto secret = http::FormField(request.body, "password");
    if (!username || username->empty()) {
      co_return ErrorResponse(Error{ErrorCode::kInvalidArgument, "username is required", "username"});
    }
    if (!secret) co_return ErrorResponse(Error{ErrorCode::kInvalidArgument, "password is required", "password"});
    email = std::move(*username);
    password = std::move(*secret);
  } else {
    auto body = BodyObject(request);
    if (!body) co_return ErrorResponse(body.error());
    auto email_field = body->RequiredString("email");
    if (!email_field) co_return ErrorResponse(email_field.error());
    auto password_field = body->RequiredString("password");
    if (!password_field) co_return ErrorResponse(password_field.error());
    email = *email_field;
    password = *password_field;
  }

  // Two buckets: the client's address (spraying many accounts) and the account (one
  // account from many addresses).
  std::vector<std::pair<std::string, std::string>> limit_headers;
  auto refusal = co_await guard_.Limit("login:ip:" + request.client_address, guard_.limits().login, limit_headers);
  if (refusal) co_return std::move(*refusal);
  std::vector<std::pair<std::string, std::string>> account_headers;
  refusal = co_await guard_.Limit(AccountBucket(email), guard_.limits().login, account_headers);
  if (refusal) co_return std::move(*refusal);

  auto tokens = co_await accounts_.Login(email, password);
  http::Response response = tokens ? TokensResponse(*tokens) : ErrorResponse(tokens.error());
  for (auto& [name, value] : limit_headers) response.AddHeader(std::move(name), std::move(value));
  co_return response;
}

Task<http::Response> AccountsApi::Refresh(http::Request& request) {
  auto body = BodyObject(request);
  if (!body) co_return ErrorResponse(body.error());
  auto token = body->RequiredString("refresh_token");
  if (!token) co_return ErrorResponse(token.error());
  auto tokens = co_await accounts_.Refresh(*token);
  if (!tokens) co_return ErrorResponse(tokens.error());
  co_return TokensResponse(*tokens);
}

Task<http::Response> AccountsApi::Logout(http::Request& request) {
  auto body = BodyObject(request);
  if (!body) co_return ErrorResponse(body.error());
  auto token = body->RequiredString("refresh_token");
  if (!token) co_return ErrorResponse(token.error());
  auto done = co_await accounts_.Logout(*token);
  if (!done) co_return ErrorResponse(done.error());
  co_return http::Response::NoContent();
}

Task<http::Response> AccountsApi::GetMe(http::Request&, const Principal& caller) {
  auto user = co_await accounts_.GetUser(caller);
  if (!user) co_return ErrorResponse(user.error());
  co_return UserResponse(200, *user);
}

Task<http::Response> AccountsApi::UpdateMe(http::Request& request, const Principal& caller) {
  auto body = BodyObject(request);
  if (!body) co_return ErrorResponse(body.error());
  auto name = body->OptionalString("name");
  if (!name) co_return ErrorResponse(name.error());
  auto email = body->OptionalString("email");
  if (!email) co_return ErrorResponse(email.error());
  accounts::ProfileChange change;
  if (*name) change.name = std::string(**name);
  if (*email) change.email = std::string(**email);
  auto user = co_await accounts_.UpdateProfile(caller, change);
  if (!user) co_return ErrorResponse(user.error());
  co_return UserResponse(200, *user);
}

Task<http::Response> AccountsApi::ChangePassword(http::Request& request, const Principal& caller) {
  auto body = BodyObject(request);
  if (!body) co_return ErrorResponse(body.error());
  auto current = body->RequiredString("current_password");
  if (!current) co_return ErrorResponse(current.error());
  auto next = body->RequiredString("new_password");
  if (!next) co_return ErrorResponse(next.error());
  auto done = co_await accounts_.ChangePassword(caller, *current, *next);
  if (!done) co_return ErrorResponse(done.error());
  co_return http::Response::NoContent();
}

Task<http::Response> AccountsApi::DeleteMe(http::Request&, const Principal& caller) {
  auto done = co_await accounts_.DeleteAccount(caller);
  if (!done) co_return ErrorResponse(done.error());
  co_return http::Response::NoContent();
}

Task<http::Response> AccountsApi::ListApiKeys(http::Request& request, const Principal& caller) {
  auto page = ParsePageRequest(request);
  if (!page) co_return ErrorResponse(page.error());
  auto keys = co_await accounts_.ListApiKeys(caller, *page);
  if (!keys) co_return ErrorResponse(keys.error());
  JsonWriter data;
  data.BeginArray();
  for (const auto& key : keys->items) WriteApiKey(data, key);
  data.EndArray();
  co_return http::Response::Json(200, ListBody(data.str(), keys->next_cursor));
}

Task<http::Response> AccountsApi::CreateApiKey(http::Request& request, const Principal& caller) {
  auto body = BodyObject(request);
  if (!body) co_return ErrorResponse(body.error());
  auto name = body->RequiredString("name");
  if (!name) co_return ErrorResponse(name.error());
  auto scopes = body->OptionalStringArray("scopes");
  if (!scopes) co_return ErrorResponse(scopes.error());
  auto expires_at = body->OptionalString("expires_at");
  if (!expires_at) co_return ErrorResponse(expires_at.error());
  auto limits = ReadKeyLimits(*body);
  if (!limits) co_return ErrorResponse(limits.error());
  accounts::NewApiKey key{std::string(*name), scopes->value_or(std::vector<std::string>{}),
                          std::string(expires_at->value_or("")), accounts::ApplyChange({}, *limits)};
  auto created = co_await accounts_.CreateApiKey(caller, key);
  if (!created) co_return ErrorResponse(created.error());
  JsonWriter json;
  WriteApiKey(json, created->key, created->secret);
  auto response = http::Response::Json(201, std::move(json).str());
  response.AddHeader("Cache-Control", "no-store");
  co_return response;
}

Task<http::Response> AccountsApi::RevokeApiKey(http::Request& request, const Principal& caller) {
  auto done = co_await accounts_.RevokeApiKey(caller, request.Param("id"));
  if (!done) co_return ErrorResponse(done.error());
  co_return http::Response::NoContent();
}

Task<http::Response> AccountsApi::UpdateApiKey(http::Request& request, const Principal& caller) {
  auto body = BodyObject(request);
  if (!body) co_return ErrorResponse(body.error());
  auto change = ReadKeyLimits(*body);
  if (!change) co_return ErrorResponse(change.error());
  auto key = co_await accounts_.UpdateApiKeyLimits(caller, request.Param("id"), *change);
  if (!key) co_return ErrorResponse(key.error());
  co_return ApiKeyResponse(*key);
}

Task<http::Response> AccountsApi::AdminUpdateApiKey(http::Request& request, const Principal& caller) {
  auto body = BodyObject(request);
  if (!body) co_return ErrorResponse(body.error());
  auto change = ReadKeyLimits(*body);
  if (!change) co_return ErrorResponse(change.error());
  auto key = co_await accounts_.AdminUpdateApiKeyLimits(caller, request.Param("id"), *change);
  if (!key) co_return ErrorResponse(key.error());
  co_return ApiKeyResponse(*key);
}

Task<http::Response> AccountsApi::AdminListUsers(http::Request& request, const Principal& caller) {
  auto page = ParsePageRequest(request);
  if (!page) co_return ErrorResponse(page.error());
  const std::string query = request.Query("q").value_or("");
  if (query.size() > 254) co_return ErrorResponse(Error{ErrorCode::kInvalidArgument, "q is too long", "q"});
  auto users = co_await accounts_.ListUsers(caller, query, *page);
  if (!users) co_return ErrorResponse(users.error());
  JsonWriter data;
  data.BeginArray();
  for (const auto& user : users->items) WriteUser(data, user);
  data.EndArray();
  co_return http::Response::Json(200, ListBody(data.str(), users->next_cursor));
}

Task<http::Response> AccountsApi::AdminUpdateUser(http::Request& request, const Principal& caller) {
  auto body = BodyObject(request);
  if (!body) co_return ErrorResponse(body.error());
  auto is_active = body->OptionalBool("is_active");
  if (!is_active) co_return ErrorResponse(is_active.error());
  auto role_name = body->OptionalString("role");
  if (!role_name) co_return ErrorResponse(role_name.error());
  accounts::AdminUserChange change;
  change.is_active = *is_active;
  if (*role_name) {
    change.role = accounts::ParseRole(**role_name);
    if (!change.role) {
      co_return ErrorResponse(Error{ErrorCode::kInvalidArgument, "role must be \"user\" or \"admin\"", "role"});
    }
  }
  auto user = co_await accounts_.AdminUpdateUser(caller, request.Param("id"), change);
  if (!user) co_return ErrorResponse(user.error());
  co_return UserResponse(200, *user);
}

}  // namespace chatd::api

// Who is calling: the one object every credential resolves to (a bearer JWT, a bearer API
// key, or an API key in x-api-key), so authorization runs once, on this, whatever header
// carried the credential.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chatd::accounts {

enum class Role { kUser, kAdmin };
std::string_view RoleName(Role role);
std::optional<Role> ParseRole(std::string_view name);

/// What an API key may be used for. A JWT (an interactive session) may do everything its
/// role allows.
enum class Scope : std::uint8_t { kChat = 1, kGateway = 2, kAdmin = 4 };
inline constexpr std::uint8_t kAllScopes = 1 | 2 | 4;
std::string_view ScopeName(Scope scope);
std::optional<Scope> ParseScope(std::string_view name);

struct Principal {
  std::string user_id;
  std::string email;
  Role role = Role::kUser;
  std::string api_key_id;  // empty when authenticated by an access token
  std::uint8_t scopes = kAllScopes;

  bool IsAdmin() const { return role == Role::kAdmin && HasScope(Scope::kAdmin); }
  bool HasScope(Scope scope) const { return (scopes & static_cast<std::uint8_t>(scope)) != 0; }
  bool ViaApiKey() const { return !api_key_id.empty(); }
};

}  // namespace chatd::accounts

#include "accounts/principal.hpp"

namespace chatd::accounts {

std::string_view RoleName(Role role) { return role == Role::kAdmin ? "admin" : "user"; }

std::optional<Role> ParseRole(std::string_view name) {
  if (name == "user") return Role::kUser;
  if (name == "admin") return Role::kAdmin;
  return std::nullopt;
}

std::string_view ScopeName(Scope scope) {
  switch (scope) {
    case Scope::kChat:
      return "chat";
    case Scope::kGateway:
      return "gateway";
    case Scope::kAdmin:
      return "admin";
  }
  return "";
}

std::optional<Scope> ParseScope(std::string_view name) {
  if (name == "chat") return Scope::kChat;
  if (name == "gateway") return Scope::kGateway;
  if (name == "admin") return Scope::kAdmin;
  return std::nullopt;
}

}  // namespace chatd::accounts

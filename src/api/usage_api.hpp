// HTTP adapter for usage reports: GET /usage (the caller's own) and GET /admin/usage
// (everyone's), over gateway::UsageService.
#pragma once

#include "accounts/principal.hpp"
#include "gateway/usage_service.hpp"
#include "http/message.hpp"

namespace chatd::api {

class UsageApi {
 public:
  explicit UsageApi(gateway::UsageService& usage) : usage_(usage) {}

  /// ?from=&to=&group_by=key|model|day&limit= → {"object": "usage.report", "from", "to",
  /// "group_by", "totals": totals, "data": [group...], "has_more"} (docs/api.md "Usage").
  Task<http::Response> Own(http::Request& request, const accounts::Principal& caller);
  /// The same over every user (group_by also user; user_id= narrows it to one user).
  Task<http::Response> Admin(http::Request& request, const accounts::Principal& caller);

 private:
  gateway::UsageService& usage_;
};

}  // namespace chatd::api

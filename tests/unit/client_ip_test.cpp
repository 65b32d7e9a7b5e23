#include "http/client_ip.hpp"

#include <gtest/gtest.h>

namespace chatd::http {
namespace {

CidrSet Trusted(std::string_view list) {
  auto set = CidrSet::Parse(list);
  EXPECT_TRUE(set) << set.error().message;
  return std::move(set).value();
}

std::string ClientOf(const CidrSet& trusted, std::string peer,
                     std::vector<std::pair<std::string_view, std::string_view>> headers = {}) {
  auto middleware = MakeClientAddress(trusted);
  Request request;
  request.remote_address = std::move(peer);
  request.client_address = request.remote_address;
  request.headers = std::move(headers);
  EXPECT_FALSE(middleware->OnRequest(request));  // never answers
  return request.client_address;
}

TEST(CidrSet, MatchesIpv4Ranges) {
  const CidrSet set = Trusted("10.0.0.0/8, 192.168.1.1 ,172.16.0.0/12");
  EXPECT_TRUE(set.Contains("10.0.0.1"));
  EXPECT_TRUE(set.Contains("10.255.255.255"));
  EXPECT_FALSE(set.Contains("11.0.0.0"));
  EXPECT_TRUE(set.Contains("192.168.1.1"));
  EXPECT_FALSE(set.Contains("192.168.1.2"));
  EXPECT_TRUE(set.Contains("172.31.0.1"));
  EXPECT_FALSE(set.Contains("172.32.0.1"));
  EXPECT_FALSE(set.Contains("not an ip"));
  EXPECT_FALSE(set.Contains(""));
}

TEST(CidrSet, MatchesIpv6RangesAndMappedIpv4) {
  const CidrSet set = Trusted("::1/128, fd00::/8, 10.0.0.0/8");
  EXPECT_TRUE(set.Contains("::1"));
  EXPECT_FALSE(set.Contains("::2"));
  EXPECT_TRUE(set.Contains("fd12:3456::1"));
  EXPECT_TRUE(set.Contains("FD00::ABCD"));
  EXPECT_FALSE(set.Contains("fe80::1"));
  EXPECT_TRUE(set.Contains("::ffff:10.1.2.3"));  // IPv4-mapped matches the IPv4 range
  EXPECT_FALSE(set.Contains("::ffff:11.1.2.3"));
  EXPECT_FALSE(set.Contains("::a01:203"));  // IPv4-compatible (deprecated) is not mapped
  EXPECT_FALSE(set.Contains("127.0.0.1"));  // ::1 is not 127.0.0.1

  const CidrSet mapped = Trusted("::ffff:192.168.0.0/112");
  EXPECT_TRUE(mapped.Contains("192.168.3.4"));
  EXPECT_FALSE(mapped.Contains("192.169.0.1"));
}

TEST(CidrSet, EdgePrefixes) {
  EXPECT_TRUE(Trusted("0.0.0.0/0").Contains("8.8.8.8"));
  EXPECT_FALSE(Trusted("0.0.0.0/0").Contains("2001:db8::1"));  // all of IPv4, not IPv6
  EXPECT_TRUE(Trusted("::/0").Contains("2001:db8::1"));
  EXPECT_TRUE(Trusted("::/0").Contains("8.8.8.8"));
  EXPECT_TRUE(Trusted("10.0.0.1/8").Contains("10.9.9.9"));  // host bits ignored
  EXPECT_TRUE(Trusted("2001:db8::/64").Contains("2001:db8::ffff:ffff:ffff:ffff"));
  EXPECT_FALSE(Trusted("2001:db8::/64").Contains("2001:db8:0:1::"));
  EXPECT_TRUE(Trusted("2001:db8::/65").Contains("2001:db8::7fff:0:0:0"));
  EXPECT_FALSE(Trusted("2001:db8::/65").Contains("2001:db8::8000:0:0:0"));
  EXPECT_TRUE(Trusted("").empty());
  EXPECT_TRUE(Trusted(" , ").empty());
}

TEST(CidrSet, ABadEntryIsAnErrorNamingIt) {
  for (const char* bad : {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "10.0.0/8", "example.com", "10.0.0.0/8/8",
                          "fe80::1%eth0", "1.2.3.4:80", "10.0.0.0/-1"}) {
    auto set = CidrSet::Parse(std::string("192.168.0.0/16, ") + bad);
    ASSERT_FALSE(set) << bad;
    EXPECT_EQ(set.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(set.error().message.find(bad), std::string::npos) << set.error().message;
    EXPECT_EQ(set.error().param, bad);
  }
}

TEST(ClientAddress, IgnoresForwardingHeadersFromAnUntrustedPeer) {
  const CidrSet trusted = Trusted("10.0.0.0/8");
  EXPECT_EQ(ClientOf(trusted, "203.0.113.9", {{"X-Forwarded-For", "1.2.3.4"}, {"X-Real-IP", "5.6.7.8"}}),
            "203.0.113.9");
  EXPECT_EQ(ClientOf(CidrSet(), "10.0.0.1", {{"X-Forwarded-For", "1.2.3.4"}}), "10.0.0.1");
  EXPECT_EQ(ClientOf(trusted, "2001:db8::1", {{"X-Forwarded-For", "1.2.3.4"}}), "2001:db8::1");
  EXPECT_EQ(ClientOf(trusted, "::ffff:203.0.113.9"), "203.0.113.9");  // mapped written as IPv4
  EXPECT_EQ(ClientOf(trusted, ""), "");
}

TEST(ClientAddress, ATrustedPeerThatForwardsNothingIsTheClient) {
  const CidrSet trusted = Trusted("10.0.0.0/8, fd00::/8, ::ffff:192.168.0.0/112");
  EXPECT_EQ(ClientOf(trusted, "10.0.0.1"), "10.0.0.1");
  EXPECT_EQ(ClientOf(trusted, "fd00::1"), "fd00::1");
  EXPECT_EQ(ClientOf(trusted, "::ffff:10.0.0.1"), "10.0.0.1");  // mapped written as IPv4
  EXPECT_EQ(ClientOf(trusted, "10.0.0.1", {{"X-Real-IP", "203.0.113.4"}}), "203.0.113.4");
}

TEST(ClientAddress, WalksTheTrustedChainFromTheRight) {
  const CidrSet trusted = Trusted("10.0.0.0/8, fd00::/8");
  // The client claims 6.6.6.6; our proxies appended the real client, then each other.
  EXPECT_EQ(ClientOf(trusted, "10.0.0.1", {{"X-Forwarded-For", "6.6.6.6, 203.0.113.7, 10.1.2.3, 10.0.0.2"}}),
            "203.0.113.7");
  EXPECT_EQ(ClientOf(trusted, "10.0.0.1", {{"x-forwarded-for", "203.0.113.7"}}), "203.0.113.7");
  EXPECT_EQ(ClientOf(trusted, "::ffff:10.0.0.1", {{"X-Forwarded-For", "2001:DB8::7"}}), "2001:db8::7");
  EXPECT_EQ(ClientOf(trusted, "fd00::1", {{"X-Forwarded-For", "::ffff:198.51.100.1"}}), "198.51.100.1");
  // Several headers are one list, in order.
  EXPECT_EQ(
      ClientOf(trusted, "10.0.0.1", {{"X-Forwarded-For", "6.6.6.6, 198.51.100.2"}, {"X-Forwarded-For", "10.0.0.5"}}),
      "198.51.100.2");
  // Every hop trusted: the leftmost.
  EXPECT_EQ(ClientOf(trusted, "10.0.0.1", {{"X-Forwarded-For", "10.0.0.9, 10.0.0.8"}}), "10.0.0.9");
  // Ports and brackets some proxies add.
  EXPECT_EQ(ClientOf(trusted, "10.0.0.1", {{"X-Forwarded-For", "203.0.113.7:51234"}}), "203.0.113.7");
  EXPECT_EQ(ClientOf(trusted, "10.0.0.1", {{"X-Forwarded-For", "[2001:db8::7]:443"}}), "2001:db8::7");
}

TEST(ClientAddress, AMalformedEntryStopsTheWalk) {
  const CidrSet trusted = Trusted("10.0.0.0/8");
  EXPECT_EQ(ClientOf(trusted, "10.0.0.1", {{"X-Forwarded-For", "203.0.113.7, garbage, 10.0.0.2"}}), "10.0.0.2");
  EXPECT_EQ(ClientOf(trusted, "10.0.0.1", {{"X-Forwarded-For", "203.0.113.7, garbage"}}), "10.0.0.1");
  EXPECT_EQ(ClientOf(trusted, "10.0.0.1", {{"X-Forwarded-For", ""}}), "10.0.0.1");
  EXPECT_EQ(ClientOf(trusted, "10.0.0.1", {{"X-Forwarded-For", "203.0.113.7,,10.0.0.2"}}), "10.0.0.2");
  EXPECT_EQ(ClientOf(trusted, "10.0.0.1", {{"X-Forwarded-For", "fe80::1%eth0"}}), "10.0.0.1");
}

TEST(ClientAddress, UsesXRealIpWithoutXForwardedFor) {
  const CidrSet trusted = Trusted("10.0.0.0/8");
  EXPECT_EQ(ClientOf(trusted, "10.0.0.1", {{"X-Real-IP", " 203.0.113.7 "}}), "203.0.113.7");
  EXPECT_EQ(ClientOf(trusted, "10.0.0.1", {{"X-Real-IP", "not-an-ip"}}), "10.0.0.1");
  // X-Forwarded-For wins when both are present.
  EXPECT_EQ(ClientOf(trusted, "10.0.0.1", {{"X-Real-IP", "198.51.100.1"}, {"X-Forwarded-For", "203.0.113.7"}}),
            "203.0.113.7");
  EXPECT_EQ(ClientOf(trusted, "10.0.0.1"), "10.0.0.1");
}

}  // namespace
}  // namespace chatd::http

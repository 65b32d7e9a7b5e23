// The app's settings read from the environment (app/config.cpp): here, the upstream
// connection pool's size.
#include "app/config.hpp"

#include <gtest/gtest.h>

namespace chatd::app {
namespace {

TEST(AppConfig, KeepsAHundredAndTwentyEightIdleUpstreamConnectionsUnlessTold) {
  auto defaults = LoadConfig(EnvSource::FromMap({}));
  ASSERT_TRUE(defaults) << defaults.error().message;
  EXPECT_EQ(defaults->llm_client.max_idle_per_origin, 128u);

  auto set = LoadConfig(EnvSource::FromMap({{"LLM_MAX_IDLE_CONNECTIONS", "0"}}));
  ASSERT_TRUE(set) << set.error().message;
  EXPECT_EQ(set->llm_client.max_idle_per_origin, 0u);  // no pooling at all

  auto bad = LoadConfig(EnvSource::FromMap({{"LLM_MAX_IDLE_CONNECTIONS", "-1"}}));
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("LLM_MAX_IDLE_CONNECTIONS"), std::string::npos) << bad.error().message;
}

}  // namespace
}  // namespace chatd::app

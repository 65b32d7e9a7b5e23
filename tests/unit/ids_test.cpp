#include "core/ids.hpp"

#include <set>
#include <thread>

#include <gtest/gtest.h>

namespace chatd {
namespace {

TEST(UuidV7, HasVersionVariantAndShape) {
  const std::string id = NewUuidV7();
  ASSERT_TRUE(LooksLikeUuid(id));
  EXPECT_EQ(id[14], '7');
  EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos);
}

TEST(UuidV7, IdsAreUniqueAndSortByCreationTimeAcrossMilliseconds) {
  std::set<std::string> ids;
  for (int i = 0; i < 10000; ++i) ids.insert(NewUuidV7());
  EXPECT_EQ(ids.size(), 10000u);
  const std::string earlier = NewUuidV7();
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_LT(earlier, NewUuidV7());
}

TEST(LooksLikeUuid, RejectsOtherShapes) {
  EXPECT_FALSE(LooksLikeUuid(""));
  EXPECT_FALSE(LooksLikeUuid("not-a-uuid"));
  EXPECT_FALSE(LooksLikeUuid("0192f1e0-7c1a-7abc-8def-0123456789ag"));
}

}  // namespace
}  // namespace chatd

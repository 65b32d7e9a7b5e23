#include "core/config_env.hpp"

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

namespace chatd {
namespace {

using std::chrono::milliseconds;

TEST(ConfigReader, ReadsTypedValuesAndDefaults) {
  auto env = EnvSource::FromMap({{"PORT", "9000"}, {"DEBUG", "yes"}, {"TIMEOUT", "250ms"}, {"SIZE", "2MB"},
                                 {"LIST", " a, b ,,c "}});
  ConfigReader read(env);
  EXPECT_EQ(read.Integer("PORT", 1, 0, 65535), 9000);
  EXPECT_EQ(read.Integer("MISSING", 7, 0, 10), 7);
  EXPECT_TRUE(read.Bool("DEBUG", false));
  EXPECT_EQ(read.Duration("TIMEOUT", milliseconds(1)), milliseconds(250));
  EXPECT_EQ(read.Bytes("SIZE", 1), 2u * 1024 * 1024);
  EXPECT_EQ(read.List("LIST"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_FALSE(read.error());
}

TEST(ConfigReader, FirstInvalidValueNamesVariableProblemAndAcceptedForm) {
  auto env = EnvSource::FromMap({{"PORT", "abc"}, {"LOG_FORMAT", "xml"}});
  ConfigReader read(env);
  read.Integer("PORT", 8000, 0, 65535);
  read.OneOf("LOG_FORMAT", "text", {"text", "json"});
  ASSERT_TRUE(read.error());
  EXPECT_EQ(*read.error(), "PORT='abc' is not a whole number; expected an integer from 0 to 65535");
}

TEST(ConfigReader, RejectsOutOfRangeAndUnknownChoices) {
  auto env = EnvSource::FromMap({{"PORT", "70000"}});
  ConfigReader read(env);
  read.Integer("PORT", 8000, 0, 65535);
  EXPECT_EQ(*read.error(), "PORT='70000' is out of range; expected an integer from 0 to 65535");
  auto env2 = EnvSource::FromMap({{"LOG_FORMAT", "xml"}});
  ConfigReader read2(env2);
  read2.OneOf("LOG_FORMAT", "text", {"text", "json"});
  EXPECT_EQ(*read2.error(), "LOG_FORMAT='xml' is not allowed; expected one of text, json");
}

TEST(ParseDuration, AcceptsUnitsAndBareSeconds) {
  EXPECT_EQ(ParseDuration("10"), milliseconds(10'000));
  EXPECT_EQ(ParseDuration("1.5s"), milliseconds(1'500));
  EXPECT_EQ(ParseDuration("2m"), milliseconds(120'000));
  EXPECT_EQ(ParseDuration("1h"), milliseconds(3'600'000));
  EXPECT_FALSE(ParseDuration("ten"));
  EXPECT_FALSE(ParseDuration("5 parsecs"));
  EXPECT_FALSE(ParseDuration("-1s"));
}

TEST(ParseByteSize, AcceptsNginxStyleSuffixes) {
  EXPECT_EQ(ParseByteSize("1048576"), 1048576u);
  EXPECT_EQ(ParseByteSize("512KB"), 512u * 1024);
  EXPECT_EQ(ParseByteSize("1m"), 1024u * 1024);
  EXPECT_EQ(ParseByteSize("2GiB"), 2ull << 30);
  EXPECT_FALSE(ParseByteSize("lots"));
  EXPECT_FALSE(ParseByteSize("1TB"));
}

TEST(EnvSource, DotEnvFileFillsGapsAndProcessEnvironmentWins) {
  const std::string path = ::testing::TempDir() + "/chatd_test.env";
  {
    std::ofstream file(path);
    file << "# comment\nCHATD_TEST_ONLY_IN_FILE=\"from file\"\nexport CHATD_TEST_BOTH=file # trailing\n";
  }
  setenv("CHATD_TEST_BOTH", "process", 1);
  auto env = EnvSource::Load(path);
  ASSERT_TRUE(env);
  EXPECT_EQ(env->Get("CHATD_TEST_ONLY_IN_FILE"), "from file");
  EXPECT_EQ(env->Get("CHATD_TEST_BOTH"), "process");
  unsetenv("CHATD_TEST_BOTH");
  std::remove(path.c_str());
}

TEST(EnvSource, MalformedDotEnvLineIsAnError) {
  const std::string path = ::testing::TempDir() + "/chatd_bad.env";
  {
    std::ofstream file(path);
    file << "GOOD=1\nthis line has no equals sign\n";
  }
  auto env = EnvSource::Load(path);
  ASSERT_FALSE(env);
  EXPECT_NE(env.error().message.find("line 2"), std::string::npos);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace chatd

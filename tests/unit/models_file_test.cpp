// The models file (MODELS_FILE): deployments, balance and aliases, each way they can be
// wrong, and the example in deploy/ (its commented deployments block included).
#include "app/models_file.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

#include "app/config.hpp"

namespace chatd::app {
namespace {

namespace fs = std::filesystem;

// Writes `content` to a fresh file and removes it at the end of the test.
class ModelsFileTest : public ::testing::Test {
 protected:
  ~ModelsFileTest() override { fs::remove(path_); }

  std::string Write(const std::string& content) {
    std::ofstream(path_) << content;
    return path_.string();
  }
  Expected<ModelsFile> Load(const std::string& content, std::map<std::string, std::string> env = {}) {
    return LoadModelsFile(Write(content), llm::UpstreamConfig{}, EnvSource::FromMap(std::move(env)));
  }

  static fs::path UniquePath() {
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(test.begin(), test.end(), '/', '-');  // parameterised tests are "Name/3"
    return fs::temp_directory_path() / ("chatd-models-" + std::to_string(::getpid()) + "-" + test + ".toml");
  }

  fs::path path_ = UniquePath();
};

constexpr const char* kProviders = R"(
[[providers]]
name = "east"
base_url = "http://127.0.0.1:1/v1"

[[providers]]
name = "west"
base_url = "http://127.0.0.1:2/v1"
)";

TEST_F(ModelsFileTest, ReadsDeploymentsBalanceAndAliases) {
  auto file = Load(std::string(kProviders) + R"(
[[models]]
name = "gpt"
deployments = [
  { provider = "east", upstream_model = "gpt-e", weight = 3 },
  { provider = "west" },
]
balance = "least_busy"
aliases = ["gpt-latest", "g"]

[[models]]
name = "single"
provider = "east"
aliases = ["one"]
)");
  ASSERT_TRUE(file) << file.error().message;
  ASSERT_EQ(file->router.models.size(), 2u);
  const llm::ModelConfig& gpt = file->router.models[0];
  EXPECT_TRUE(gpt.provider.empty());
  ASSERT_EQ(gpt.deployments.size(), 2u);
  EXPECT_EQ(gpt.deployments[0].provider, "east");
  EXPECT_EQ(gpt.deployments[0].upstream_model, "gpt-e");
  EXPECT_EQ(gpt.deployments[0].weight, 3);
  EXPECT_EQ(gpt.deployments[1].provider, "west");
  EXPECT_EQ(gpt.deployments[1].upstream_model, "");
  EXPECT_EQ(gpt.deployments[1].weight, 1);
  EXPECT_EQ(gpt.balance, llm::BalancePolicy::kLeastBusy);
  EXPECT_EQ(gpt.aliases, (std::vector<std::string>{"gpt-latest", "g"}));

  const llm::ModelConfig& single = file->router.models[1];
  EXPECT_EQ(single.balance, llm::BalancePolicy::kWeighted);
  ASSERT_EQ(single.Deployments().size(), 1u);
  EXPECT_EQ(single.Deployments()[0].provider, "east");
  EXPECT_EQ(single.aliases, (std::vector<std::string>{"one"}));
}

TEST_F(ModelsFileTest, BalanceDefaultsToWeighted) {
  auto file = Load(std::string(kProviders) +
                   "[[models]]\nname = \"m\"\ndeployments = [{ provider = \"east\" }, { provider = \"west\" }]\n");
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_EQ(file->router.models[0].balance, llm::BalancePolicy::kWeighted);
}

TEST_F(ModelsFileTest, AModelMaySetItsOwnTimeoutsAndRetries) {
  auto file = Load(std::string(kProviders) + R"(
[[models]]
name = "patient"
provider = "east"
first_byte_timeout = "2m"
idle_timeout = 45
retries = 0

[[models]]
name = "plain"
provider = "east"
)");
  ASSERT_TRUE(file) << file.error().message;
  const llm::CallLimits& patient = file->router.models[0].limits;
  EXPECT_EQ(patient.first_byte_timeout, std::chrono::minutes(2));
  EXPECT_EQ(patient.idle_timeout, std::chrono::seconds(45));
  EXPECT_EQ(patient.retries, 0);  // set to 0, not unset: the upstream's retries do not apply
  const llm::CallLimits& plain = file->router.models[1].limits;
  EXPECT_FALSE(plain.first_byte_timeout || plain.idle_timeout || plain.retries);
}

struct Invalid {
  const char* model;      // the [[models]] entries after kProviders
  const char* complaint;  // expected in the message
};

void PrintTo(const Invalid& invalid, std::ostream* out) { *out << invalid.complaint; }

class ModelsFileInvalidTest : public ModelsFileTest, public ::testing::WithParamInterface<Invalid> {};

TEST_P(ModelsFileInvalidTest, NamesTheFileTheModelAndTheField) {
  auto file = Load(std::string(kProviders) + GetParam().model);
  ASSERT_FALSE(file);
  EXPECT_EQ(file.error().code, ErrorCode::kInvalidArgument);
  const std::string& message = file.error().message;
  EXPECT_NE(message.find("MODELS_FILE " + path_.string() + ": "), std::string::npos) << message;
  EXPECT_NE(message.find(GetParam().complaint), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ModelsFileInvalidTest,
    ::testing::Values(
        Invalid{"[[models]]\nname = \"m\"\n", "model 'm': provider (or deployments) is required"},
        Invalid{"[[models]]\nname = \"m\"\nprovider = \"east\"\ndeployments = [{ provider = \"west\" }]\n",
                "model 'm': set provider and upstream_model, or deployments, not both"},
        Invalid{"[[models]]\nname = \"m\"\ndeployments = []\n", "model 'm': deployments is empty"},
        Invalid{"[[models]]\nname = \"m\"\ndeployments = \"east\"\n", "model 'm': deployments must be an array"},
        Invalid{"[[models]]\nname = \"m\"\ndeployments = [\"east\"]\n", "model 'm': deployments[0] must be a table"},
        Invalid{"[[models]]\nname = \"m\"\ndeployments = [{ provider = \"east\" }, { weight = 2 }]\n",
                "model 'm': deployments[1]: provider is required"},
        Invalid{"[[models]]\nname = \"m\"\ndeployments = [{ provider = \"east\", weight = 0 }]\n",
                "model 'm': deployments[0]: weight must be a whole number from 1 to 1000"},
        Invalid{"[[models]]\nname = \"m\"\ndeployments = [{ provider = \"east\", weight = 1.5 }]\n",
                "model 'm': deployments[0]: weight must be a whole number"},
        Invalid{"[[models]]\nname = \"m\"\ndeployments = [{ provider = \"east\", weight = \"3\" }]\n",
                "model 'm': deployments[0]: weight must be a whole number"},
        Invalid{"[[models]]\nname = \"m\"\ndeployments = [{ provider = \"east\" }]\nbalance = \"random\"\n",
                "model 'm': balance 'random' is not known"},
        Invalid{"[[models]]\nname = \"m\"\nprovider = \"east\"\nbalance = \"least_busy\"\n",
                "model 'm': balance needs deployments"},
        Invalid{"[[models]]\nname = \"m\"\nprovider = \"east\"\naliases = \"m2\"\n",
                "model 'm': aliases must be an array of strings"},
        Invalid{"[[models]]\nname = \"a\"\nprovider = \"east\"\naliases = [\"b\"]\n"
                "[[models]]\nname = \"b\"\nprovider = \"west\"\n",
                "model 'a': alias 'b' is the name of a model"},
        Invalid{"[[models]]\nname = \"a\"\nprovider = \"east\"\naliases = [\"x\"]\n"
                "[[models]]\nname = \"b\"\nprovider = \"west\"\naliases = [\"x\"]\n",
                "model 'b': alias 'x' is already an alias of model 'a'"},
        Invalid{"[[models]]\nname = \"a\"\nprovider = \"east\"\naliases = [\"\"]\n",
                "model 'a': aliases: an alias is empty"},
        Invalid{"[[models]]\nname = \"a\"\nprovider = \"east\"\nidle_timeout = \"soon\"\n",
                "model 'a': idle_timeout must be a duration above 0"},
        Invalid{"[[models]]\nname = \"a\"\nprovider = \"east\"\nfirst_byte_timeout = 0\n",
                "model 'a': first_byte_timeout must be a duration above 0"},
        Invalid{"[[models]]\nname = \"a\"\nprovider = \"east\"\nretries = 11\n",
                "model 'a': retries must be a whole number from 0 to 10"}));

TEST_F(ModelsFileTest, AnUnknownDeploymentProviderStopsTheConfiguration) {
  // The providers the environment sets up are known only once the file is read: LoadConfig checks.
  const std::string path = Write(std::string(kProviders) +
                                 "[[models]]\nname = \"m\"\ndeployments = [{ provider = \"east\" }, "
                                 "{ provider = \"nowhere\" }]\n");
  auto config = LoadConfig(EnvSource::FromMap({{"MODELS_FILE", path}}));
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().message.find("model 'm' names provider 'nowhere'"), std::string::npos)
      << config.error().message;
}

// The example file loads, and so does its commented deployments block once uncommented.
TEST_F(ModelsFileTest, TheExampleFileIsValid) {
  std::ifstream in(std::string(CHATD_SOURCE_DIR) + "/deploy/models.example.toml");
  ASSERT_TRUE(in);
  std::stringstream text;
  text << in.rdbuf();
  const std::map<std::string, std::string> keys{
      {"OPENAI_API_KEY", "sk-a"}, {"DEEPSEEK_API_KEY", "sk-b"}, {"OPENAI_EU_API_KEY", "sk-c"}};
  auto example = Load(text.str(), keys);
  ASSERT_TRUE(example) << example.error().message;

  std::string uncommented;
  bool in_block = false;
  std::istringstream lines(text.str());
  for (std::string line; std::getline(lines, line);) {
    in_block = in_block || line == "# [[providers]]";
    if (in_block && line.rfind('#', 0) == 0) line.erase(0, line.size() > 1 && line[1] == ' ' ? 2 : 1);
    uncommented += line + "\n";
  }
  ASSERT_TRUE(in_block) << "the commented deployments example is gone";
  auto balanced = Load(uncommented, keys);
  ASSERT_TRUE(balanced) << balanced.error().message;
  const llm::ModelConfig& last = balanced->router.models.back();
  EXPECT_EQ(last.name, "gpt-4.1");
  ASSERT_EQ(last.deployments.size(), 2u);
  EXPECT_EQ(last.deployments[0].weight, 3);
}

}  // namespace
}  // namespace chatd::app

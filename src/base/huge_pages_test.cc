#include "base/huge_pages.h"

#include <gtest/gtest.h>

#include "testing/huge_pages_env.h"

namespace vmgroup {
namespace {

using testing::HugePagesEnv;

TEST(HugePagesTest, PagesForRoundUp) {
  EXPECT_EQ(HugePagesFor(128), 64);
  EXPECT_EQ(HugePagesFor(1024), 512);
  EXPECT_EQ(HugePagesFor(129), 65);
}

TEST(HugePagesTest, MemoryMustBeAWholeNumberOfPages) {
  EXPECT_TRUE(CheckHugePageMultiple("VM db", 128).ok());
  Status s = CheckHugePageMultiple("VM db", 129);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("VM db"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("multiple of 2 MiB, not 129 MiB (128 or 130"), std::string::npos)
      << s.message();
}

TEST(HugePagesTest, EnoughFreePagesAreOk) {
  HugePagesEnv env;
  env.Set(/*pool=*/64, /*free=*/64);
  EXPECT_TRUE(CheckHugePagesFree(&env, "VM db", 128).ok());
}

TEST(HugePagesTest, TooFewSaysHowManyAndHowToReserve) {
  HugePagesEnv env;
  env.Set(/*pool=*/100, /*free=*/40);
  Status s = CheckHugePagesFree(&env, "VM db", 128);
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_NE(s.message().find("VM db: 128 MiB of RAM on huge pages needs 64 free 2 MiB pages and "
                             "the host has 40 free"),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("sysctl vm.nr_hugepages=124"), std::string::npos) << s.message();
}

TEST(HugePagesTest, PromisedPagesAreNotFree) {
  HugePagesEnv env;
  env.Set(/*pool=*/64, /*free=*/64, /*promised=*/10);
  Status s = CheckHugePagesFree(&env, "VM db", 128);
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_NE(s.message().find("the host has 54 free"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("vm.nr_hugepages=74"), std::string::npos) << s.message();
}

TEST(HugePagesTest, NoPoolAtAllIsUnavailable) {
  HugePagesEnv env;
  env.Set(-1, -1, -1);
  Status s = CheckHugePagesFree(&env, "VM db", 128);
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_NE(s.message().find("offers no 2 MiB huge pages"), std::string::npos) << s.message();
}

TEST(HugePagesTest, WithoutThePoolSizeItSaysByHowMuchToRaiseIt) {
  HugePagesEnv env;
  env.Set(/*pool=*/-1, /*free=*/0, /*promised=*/-1);
  Status s = CheckHugePagesFree(&env, "VM db", 64);
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_NE(s.message().find("raise vm.nr_hugepages by 32"), std::string::npos) << s.message();
}

TEST(HugePagesTest, AnUnreadableCountIsAnIoError) {
  class Garbled final : public EnvWrapper {
   public:
    Garbled() : EnvWrapper(Env::Default()) {}
    Result<std::string> ReadFile(const std::string& path) override {
      if (path == kFreeHugePagesPath) return std::string("many\n");
      return EnvWrapper::ReadFile(path);
    }
  } env;
  EXPECT_EQ(CheckHugePagesFree(&env, "VM db", 64).code(), Code::kIoError);
}

TEST(HugePagesTest, TheRealHostAnswersOneWayOrTheOther) {
  // The default Env reads the real sysfs files: it must parse them (this
  // machine has a 2 MiB pool, reserved or not).
  Status s = CheckHugePagesFree(Env::Default(), "VM db", 2);
  EXPECT_TRUE(s.ok() || s.code() == Code::kUnavailable) << s.ToString();
}

}  // namespace
}  // namespace vmgroup

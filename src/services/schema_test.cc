// The schema (schema/classes.h) against what the services declare. The CLI
// reads instances by the schema's names, and a struct there holds only its
// class's properties, so a read of a name the class lacks does not compile;
// what is left is that the schema tell the truth: each class it names is
// one the services serve or declare, with exactly the properties declared.
// A property the schema names and the services do not declare would read
// as an empty column in the CLI; one declared and not named could not be
// read at all.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "schema/classes.h"
#include "services/providers.h"
#include "testing/temp_dir.h"

namespace vmgroup::services {
namespace {

// Every class a dispatcher gets from Register: the providers' and the
// declared-only ones clients embed.
class SchemaTest : public ::testing::Test {
 protected:
  SchemaTest() {
    // TCG named: these tests start no QEMU, and auto would probe KVM (accel_probe.h).
    engine_ = std::move(engine::Engine::Open({.state_dir = dir_ / "state",
                                              .qemu = {.accel = hypervisor::qemu::Accel::kTcg}}))
                  .value();
    jobs_ = std::make_unique<JobManager>(Env::Default(), &engine_->catalog());
    providers_ = AllProviders({engine_.get(), jobs_.get(), "testhost"});
    for (const auto& p : providers_) specs_.push_back(p->spec());
    for (auto& s : EmbeddedClasses()) specs_.push_back(std::move(s));
  }

  const cim::ClassSpec* Spec(std::string_view name) const {
    auto it = std::find_if(specs_.begin(), specs_.end(),
                           [&](const cim::ClassSpec& s) { return s.name == name; });
    return it == specs_.end() ? nullptr : &*it;
  }

  testing::TempDir dir_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<JobManager> jobs_;
  Providers providers_;
  std::vector<cim::ClassSpec> specs_;
};

// How the schema's names of a class differ from its declaration; empty
// when they are the same set, each named once.
std::string Difference(const schema::ClassNames& names, const cim::ClassSpec& spec) {
  std::set<std::string> declared, named;
  for (const auto& p : spec.properties) declared.insert(p.name);
  std::string out;
  for (std::string_view n : names.properties) {
    if (!named.insert(std::string(n)).second) out += " named twice: " + std::string(n) + ";";
    if (!declared.count(std::string(n))) out += " not declared: " + std::string(n) + ";";
  }
  for (const auto& d : declared) {
    if (!named.count(d)) out += " not named: " + d + ";";
  }
  return out;
}

TEST_F(SchemaTest, EveryClassTheServicesDeclareIsInTheSchema) {
  for (const auto& spec : specs_) {
    EXPECT_TRUE(std::any_of(std::begin(schema::kClasses), std::end(schema::kClasses),
                            [&](const schema::ClassNames& c) { return c.name == spec.name; }))
        << spec.name;
  }
}

TEST_F(SchemaTest, EverySchemaClassIsDeclaredWithExactlyItsProperties) {
  for (const auto& names : schema::kClasses) {
    const cim::ClassSpec* spec = Spec(names.name);
    if (!spec) {
      ADD_FAILURE() << names.name << " is in the schema but the services do not declare it";
      continue;
    }
    EXPECT_EQ(Difference(names, *spec), "") << names.name;
  }
}

// Difference itself sees a misspelt, a missing and a doubled name.
TEST_F(SchemaTest, DifferenceSeesEveryKindOfMismatch) {
  const cim::ClassSpec* spec = Spec(schema::ConcreteJob::kClass);
  ASSERT_NE(spec, nullptr);
  std::vector<std::string_view> names(schema::ConcreteJob::kProperties.begin(),
                                      schema::ConcreteJob::kProperties.end());
  ASSERT_EQ(Difference({schema::ConcreteJob::kClass, names}, *spec), "");

  auto misspelt = names;
  misspelt[0] = "InstanceId";
  EXPECT_EQ(Difference({schema::ConcreteJob::kClass, misspelt}, *spec),
            " not declared: InstanceId; not named: InstanceID;");
  auto missing = names;
  missing.pop_back();
  EXPECT_EQ(Difference({schema::ConcreteJob::kClass, missing}, *spec),
            " not named: " + std::string(names.back()) + ";");
  auto doubled = names;
  doubled.push_back(names[0]);
  EXPECT_EQ(Difference({schema::ConcreteJob::kClass, doubled}, *spec), " named twice: InstanceID;");
}

}  // namespace
}  // namespace vmgroup::services

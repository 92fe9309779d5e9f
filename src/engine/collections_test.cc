#include "engine/collections.h"

#include <gtest/gtest.h>

#include "base/return_codes.h"
#include "testing/temp_dir.h"

namespace vmgroup::engine {
namespace {

using catalog::CollectionType;

class Collections : public ::testing::Test {
 protected:
  void SetUp() override {
    catalog_ = std::move(catalog::Catalog::Open(dir_ / "c.db")).value();
    mgr_ = std::make_unique<CollectionManager>(Env::Default(), catalog_.get());
    for (const char* id : {"vm-a", "vm-b"}) {
      ASSERT_TRUE(catalog_->InsertVm({.id = id, .name = id}).ok());
    }
  }
  std::string Define(const std::string& name, CollectionType t = CollectionType::kVirtualSystems) {
    auto id = mgr_->DefineCollection(name, "", t);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : "";
  }

  testing::TempDir dir_;
  std::unique_ptr<catalog::Catalog> catalog_;
  std::unique_ptr<CollectionManager> mgr_;
};

TEST_F(Collections, DefineGeneratesAGuidOrTakesTheGivenOne) {
  std::string id = Define("web");
  EXPECT_EQ(id.size(), 36u);
  EXPECT_EQ(catalog_->GetCollection(id)->name, "web");
  auto given = mgr_->DefineCollection("db", "6F1E0C3A-2B4D-4C5E-8F90-0A1B2C3D4E5F",
                                      CollectionType::kVirtualSystems);
  ASSERT_TRUE(given.ok());
  EXPECT_EQ(*given, "6f1e0c3a-2b4d-4c5e-8f90-0a1b2c3d4e5f");
  EXPECT_EQ(catalog_->GetCollection(Define("", CollectionType::kCollections))->name,
            "New Management Group");
}

TEST_F(Collections, BadDefinitionsAreRefusedWithInvalidParameter) {
  const std::string id = "6f1e0c3a-2b4d-4c5e-8f90-0a1b2c3d4e5f";
  ASSERT_TRUE(mgr_->DefineCollection("a", id, CollectionType::kVirtualSystems).ok());
  auto dup = mgr_->DefineCollection("b", id, CollectionType::kVirtualSystems);
  EXPECT_EQ(dup.status().code(), Code::kAlreadyExists);
  EXPECT_EQ(ReturnCodeB(dup.status()), kRcBInvalidParameter);
  EXPECT_EQ(
      ReturnCodeB(
          mgr_->DefineCollection("c", "not-a-guid", CollectionType::kVirtualSystems).status()),
      kRcBInvalidParameter);
  EXPECT_EQ(ReturnCodeB(mgr_->DefineCollection("d", "", static_cast<CollectionType>(7)).status()),
            kRcBInvalidParameter);
  EXPECT_EQ(catalog_->ListCollections()->size(), 1u) << "nothing made by refused calls";
}

TEST_F(Collections, MembershipRules) {
  std::string web = Define("web");
  ASSERT_TRUE(mgr_->AddMember("vm-a", web).ok());
  Status twice = mgr_->AddMember("vm-a", web);
  EXPECT_EQ(twice.code(), Code::kAlreadyExists);
  EXPECT_NE(twice.message().find("already a member"), std::string::npos);
  EXPECT_EQ(mgr_->AddMember("vm-zz", web).code(), Code::kNotFound);
  EXPECT_EQ(mgr_->AddMember("vm-a", "no-such-collection").code(), Code::kNotFound);
  EXPECT_EQ(mgr_->AddMember(web, web).code(), Code::kNotFound) << "a VM group takes only VMs";
  EXPECT_EQ(catalog_->GetCollection(web)->members, std::vector<std::string>{"vm-a"});

  EXPECT_EQ(mgr_->RemoveMember("vm-b", web).code(), Code::kNotFound);
  EXPECT_TRUE(mgr_->RemoveMember("vm-a", web).ok());
  EXPECT_TRUE(mgr_->RemoveMemberById("vm-a", web).ok()) << "idempotent";
  EXPECT_TRUE(mgr_->RemoveMemberById("vm-a", "gone").ok()) << "idempotent";
}

TEST_F(Collections, ManagementCollectionsNestWithoutCycles) {
  std::string web = Define("web"), db = Define("db");
  std::string all = Define("all", CollectionType::kCollections);
  std::string top = Define("top", CollectionType::kCollections);
  ASSERT_TRUE(mgr_->AddMember("vm-a", web).ok());
  ASSERT_TRUE(mgr_->AddMember("vm-b", db).ok());
  ASSERT_TRUE(mgr_->AddMember("vm-a", db).ok());
  ASSERT_TRUE(mgr_->AddMember(web, all).ok());
  ASSERT_TRUE(mgr_->AddMember(db, all).ok());
  ASSERT_TRUE(mgr_->AddMember(all, top).ok());
  EXPECT_EQ(mgr_->AddMember(top, all).code(), Code::kInvalidArgument);
  EXPECT_EQ(mgr_->AddMember(all, all).code(), Code::kInvalidArgument);
  EXPECT_EQ(mgr_->AddMember("vm-a", all).code(), Code::kNotFound) << "groups of groups take groups";
  EXPECT_EQ(*mgr_->MemberVms(top), (std::vector<std::string>{"vm-a", "vm-b"}));
}

TEST_F(Collections, DestroyOnlyWhenEmptyAndUnreferenced) {
  std::string web = Define("web");
  std::string all = Define("all", CollectionType::kCollections);
  ASSERT_TRUE(mgr_->AddMember("vm-a", web).ok());
  Status s = mgr_->DestroyCollection(web);
  EXPECT_EQ(ReturnCodeB(s), kRcBInvalidState);
  EXPECT_NE(s.message().find("remove them first"), std::string::npos);
  ASSERT_TRUE(mgr_->RemoveMember("vm-a", web).ok());
  ASSERT_TRUE(mgr_->AddMember(web, all).ok());
  EXPECT_EQ(mgr_->DestroyCollection(web).code(), Code::kInvalidState);
  ASSERT_TRUE(mgr_->RemoveMember(web, all).ok());
  EXPECT_TRUE(mgr_->DestroyCollection(web).ok());
  EXPECT_EQ(mgr_->DestroyCollection(web).code(), Code::kNotFound);
}

TEST_F(Collections, RenameChangesOnlyTheName) {
  std::string web = Define("web");
  EXPECT_TRUE(mgr_->RenameCollection(web, "frontend").ok());
  EXPECT_EQ(catalog_->GetCollection(web)->name, "frontend");
  EXPECT_EQ(mgr_->RenameCollection(web, "").code(), Code::kInvalidArgument);
  EXPECT_EQ(mgr_->RenameCollection("nope", "x").code(), Code::kNotFound);
  EXPECT_EQ(catalog_->GetCollection(web)->name, "frontend");
}

}  // namespace
}  // namespace vmgroup::engine

#include "hypervisor/libvirt/domain_xml.h"

#include <gtest/gtest.h>

namespace vmgroup::hypervisor::libvirt {
namespace {

// A live definition as libvirt 9.0 prints it (trimmed).
constexpr char kLive[] = R"(<domain type='qemu' id='3'>
  <name>db1</name>
  <uuid>4a2f6a8e-2b1c-4f0e-9c55-0d3b9e1f2a77</uuid>
  <memory unit='KiB'>131072</memory>
  <vcpu placement='static'>2</vcpu>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/img/db1-a.ov1.qcow2' index='3'/>
      <backingStore type='file' index='1'>
        <format type='qcow2'/>
        <source file='/img/db1-a.qcow2'/>
        <backingStore/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/iso/install.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/img/db1-b.qcow2' index='2'/>
      <backingStore/>
      <target dev='vdb' bus='virtio'/>
    </disk>
  </devices>
</domain>)";

TEST(DomainXmlTest, ReadsFactsAndChains) {
  auto d = ParseDomainXml(kLive);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->info.uuid, "4a2f6a8e-2b1c-4f0e-9c55-0d3b9e1f2a77");
  EXPECT_EQ(d->info.name, "db1");
  EXPECT_EQ(d->info.memory_mib, 128);
  EXPECT_EQ(d->info.vcpus, 2);
  EXPECT_EQ(d->info.disks, (std::vector<std::string>{"/img/db1-a.ov1.qcow2", "/img/db1-b.qcow2"}));
  EXPECT_EQ(d->info.unsupported, "");
  ASSERT_EQ(d->all_disks.size(), 3u);
  EXPECT_EQ(d->snapshot_disks, (std::vector<size_t>{0, 2}));
  EXPECT_EQ(d->all_disks[0].backing, std::vector<std::string>{"/img/db1-a.qcow2"});
  EXPECT_TRUE(d->all_disks[2].backing.empty());
  EXPECT_TRUE(d->all_disks[1].read_only);
  EXPECT_EQ(d->all_disks[1].device, "cdrom");
}

std::string WithDisk(const std::string& disk) {
  return "<domain><name>x</name><uuid>u</uuid><memory unit='GiB'>2</memory><vcpu>1</vcpu>"
         "<devices>" +
         disk + "</devices></domain>";
}

TEST(DomainXmlTest, SaysWhyADiskCannotBeSnapshotted) {
  struct Case {
    std::string disk, reason;
  } cases[] = {
      {"<disk type='network' device='disk'><driver type='raw'/><source protocol='rbd' "
       "name='p/i'/><target dev='vdb'/></disk>",
       "disk vdb is a network disk (rbd): only file-backed qcow2 disks are snapshotted"},
      {"<disk type='file' device='disk'><driver type='raw'/><source file='/a.img'/>"
       "<target dev='vda'/></disk>",
       "disk vda is a raw image: only file-backed qcow2 disks are snapshotted"},
      {"<disk type='block' device='disk'><driver type='raw'/><source dev='/dev/sdb'/>"
       "<target dev='vdc'/></disk>",
       "disk vdc is a block disk: only file-backed qcow2 disks are snapshotted"},
      {"<disk type='file' device='disk'><driver type='qcow2'/><source file='/a.qcow2'/>"
       "<target dev='vda'/><shareable/></disk>",
       "disk vda is shared with other domains: a snapshot of it would not be one"},
  };
  for (const auto& c : cases) {
    auto d = ParseDomainXml(WithDisk(c.disk));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_EQ(d->info.unsupported, c.reason);
    EXPECT_TRUE(d->info.disks.empty());
    EXPECT_EQ(d->info.memory_mib, 2048);
  }
}

TEST(DomainXmlTest, RefusesWhatIsNoDomain) {
  EXPECT_EQ(ParseDomainXml("<domain><name>x</name></domain>").status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(ParseDomainXml("<network/>").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ParseDomainXml("<domain").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(
      ParseDomainXml(WithDisk("<disk type='file'><source file='/a'/></disk>")).status().code(),
      Code::kInvalidArgument);
}

TEST(DomainXmlTest, SnapshotNamesOverlaysAndLeavesOtherDisksOut) {
  auto d = ParseDomainXml(kLive);
  ASSERT_TRUE(d.ok());
  const std::string xml = SnapshotXml("vmgroup-s1", d->all_disks, {{"vdb", "/img/b&c.qcow2"}});
  EXPECT_EQ(xml,
            "<domainsnapshot><name>vmgroup-s1</name><memory snapshot=\"no\"/><disks>"
            "<disk name=\"vda\" snapshot=\"no\"/><disk name=\"sda\" snapshot=\"no\"/>"
            "<disk name=\"vdb\" snapshot=\"external\" type=\"file\"><driver type=\"qcow2\"/>"
            "<source file=\"/img/b&amp;c.qcow2\"/></disk></disks></domainsnapshot>");
}

TEST(DomainXmlTest, RewriteReplacesSourcesAndDropsEveryBackingStore) {
  auto xml = RewriteDisks(kLive, {"/new/a.qcow2", "/new/b.qcow2"});
  ASSERT_TRUE(xml.ok()) << xml.status().ToString();
  EXPECT_EQ(xml->find("backingStore"), std::string::npos) << *xml;
  auto d = ParseDomainXml(*xml);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->info.disks, (std::vector<std::string>{"/new/a.qcow2", "/new/b.qcow2"}));
  EXPECT_EQ(d->all_disks[1].source, "/iso/install.iso");
  EXPECT_EQ(d->info.uuid, "4a2f6a8e-2b1c-4f0e-9c55-0d3b9e1f2a77");

  EXPECT_EQ(RewriteDisks(kLive, {"/new/a.qcow2"}).status().code(), Code::kInvalidArgument);
}

// --- Change tracking (checkpoints) ---

TEST(DomainXmlTest, CheckpointTracksTheSwitchedDisksOnly) {
  auto d = ParseDomainXml(kLive);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(CheckpointXml("vmgroup-s1", d->all_disks, {"vdb"}),
            "<domaincheckpoint><name>vmgroup-s1</name><description>vmgroup: change tracking of "
            "a recovery snapshot</description><disks><disk name=\"vda\" checkpoint=\"no\"/>"
            "<disk name=\"sda\" checkpoint=\"no\"/><disk name=\"vdb\" checkpoint=\"bitmap\"/>"
            "</disks></domaincheckpoint>");
}

TEST(DomainXmlTest, OnlyCheckpointsInVmgroupsNamespaceAreOwn) {
  EXPECT_TRUE(IsOwnCheckpoint("vmgroup-s1234abcd"));
  EXPECT_FALSE(IsOwnCheckpoint("vmgroup-"));
  EXPECT_FALSE(IsOwnCheckpoint("virtnbdbackup.0"));
  EXPECT_FALSE(IsOwnCheckpoint("my-vmgroup-s1"));
}

}  // namespace
}  // namespace vmgroup::hypervisor::libvirt

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

// --- Export and restore (issue 15) ---

namespace vmgroup::hypervisor::libvirt {
namespace {

// An inactive definition as an export carries it, with what a restore must
// rewrite: a kernel, a stale chain, a cdrom, a serial log, an agent socket,
// a MAC, an emulator, a seclabel, an nvram.
constexpr char kExported[] = R"(<domain type='qemu'>
  <name>db1</name>
  <uuid>4a2f6a8e-2b1c-4f0e-9c55-0d3b9e1f2a77</uuid>
  <genid>43dc0cf8-809b-4adb-9bea-a9abb5f3d90d</genid>
  <metadata><app:info xmlns:app='https://example.org/app'>/srv/app</app:info></metadata>
  <memory unit='KiB'>131072</memory>
  <vcpu placement='static'>1</vcpu>
  <resource><partition>/machine</partition></resource>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>
    <nvram>/var/lib/libvirt/qemu/nvram/db1_VARS.fd</nvram>
    <kernel>/boot/vmlinuz</kernel>
    <initrd>/boot/initrd.gz</initrd>
    <cmdline>console=ttyS0 root=/dev/vda</cmdline>
  </os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/img/db1-a.ov1.qcow2'/>
      <backingStore type='file'><format type='qcow2'/><source file='/img/db1-a.qcow2'/></backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/iso/install.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:12:34:56'/>
      <source network='default'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'><source path='/var/log/db1.serial'/><target port='0'/></serial>
    <console type='file'><source path='/var/log/db1.serial'/><target type='serial' port='0'/></console>
    <channel type='unix'>
      <source mode='bind' path='/var/lib/libvirt/qemu/channel/target/db1.agent'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
  </devices>
  <seclabel type='none' model='none'/>
</domain>)";

constexpr char kNewUuid[] = "0f3b5c1e-7d2a-4e9b-8c6f-1a2b3c4d5e6f";

RestoredDefinition Restored(const std::string& xml) {
  return {.definition = xml,
          .uuid = kNewUuid,
          .name = "db1-restored",
          .as_new = true,
          .disks = {"/img/x-restored-d0.qcow2"},
          .kernel = "/img/x-restored-kernel",
          .initrd = "/img/x-restored-initrd",
          .files_prefix = "/img/x-restored"};
}

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? s : s.replace(at, from.size(), to);
}

TEST(SanitizeRestoredTest, RewritesWhatNamesTheOriginalOrTheOldHost) {
  auto out = SanitizeRestored(Restored(kExported));
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  auto d = ParseDomainXml(*out);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->info.uuid, kNewUuid);
  EXPECT_EQ(d->info.name, "db1-restored");
  EXPECT_EQ(d->info.disks, std::vector<std::string>{"/img/x-restored-d0.qcow2"});
  EXPECT_TRUE(d->all_disks[0].backing.empty());
  EXPECT_EQ(out->find("backingStore"), std::string::npos) << *out;
  EXPECT_EQ(d->all_disks[1].source, "") << "the cdrom's medium is ejected";
  for (const char* gone : {"/boot/", "/iso/", "/var/", "52:54:00:12:34:56", "genid", "emulator",
                           "seclabel", "nvram", "db1.agent"}) {
    EXPECT_EQ(out->find(gone), std::string::npos) << gone << " left in " << *out;
  }
  EXPECT_NE(out->find("<kernel>/img/x-restored-kernel</kernel>"), std::string::npos) << *out;
  EXPECT_NE(out->find("<initrd>/img/x-restored-initrd</initrd>"), std::string::npos) << *out;
  // One host file, written by the serial port and the console: one new log.
  EXPECT_NE(out->find("<serial type=\"file\"><source path=\"/img/x-restored-console0.log\""),
            std::string::npos)
      << *out;
  EXPECT_NE(out->find("<console type=\"file\"><source path=\"/img/x-restored-console0.log\""),
            std::string::npos)
      << *out;
  EXPECT_EQ(out->find("console1"), std::string::npos) << *out;
  EXPECT_NE(out->find("<source network=\"default\""), std::string::npos) << "networks stay";
  EXPECT_NE(out->find("/usr/share/OVMF/OVMF_CODE.fd"), std::string::npos);
  EXPECT_NE(out->find("/dev/urandom"), std::string::npos);
}

TEST(SanitizeRestoredTest, KeepsMacAndGenerationIdWhenRestoringTheOriginal) {
  RestoredDefinition r = Restored(kExported);
  r.as_new = false;
  r.uuid = "4a2f6a8e-2b1c-4f0e-9c55-0d3b9e1f2a77";
  r.name = "db1";
  auto out = SanitizeRestored(r);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_NE(out->find("52:54:00:12:34:56"), std::string::npos);
  EXPECT_NE(out->find("genid"), std::string::npos);
}

TEST(SanitizeRestoredTest, RefusesInstructionsAndHostResources) {
  const std::string devices_end = "</devices>";
  const struct {
    std::string xml;
    std::string says;
  } cases[] = {
      {Replace(kExported, "<domain type='qemu'>",
               "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>"
               "<qemu:commandline><qemu:arg value='-S'/></qemu:commandline>"),
       "<qemu:commandline>"},
      {Replace(kExported, devices_end,
               devices_end + "<commandline xmlns='http://libvirt.org/schemas/domain/qemu/1.0'>"
                             "<arg value='-S'/></commandline>"),
       "declares the namespace http://libvirt.org/schemas/domain/qemu/1.0"},
      {Replace(kExported, devices_end,
               "<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='1' "
               "slot='0' function='0'/></source></hostdev>" +
                   devices_end),
       "host device"},
      {Replace(kExported, devices_end,
               "<interface type='hostdev'><source><address type='pci' bus='2'/></source>"
               "</interface>" +
                   devices_end),
       "host device"},
      {Replace(kExported, devices_end,
               "<filesystem type='mount'><source dir='/etc'/><target dir='etc'/></filesystem>" +
                   devices_end),
       "host directory"},
      {Replace(kExported, "<cmdline>", "<dtb>/boot/evil.dtb</dtb><cmdline>"), "<dtb>"},
      {Replace(kExported, "/usr/share/OVMF/OVMF_CODE.fd", "/etc/shadow"), "/etc/shadow"},
      {Replace(kExported, "<source path='/var/log/db1.serial'/><target port='0'/></serial>",
               "<source path='/var/log/db1.serial'/><target port='0'/></serial>"
               "<parallel type='dev'><source path='/dev/sda'/><target port='0'/></parallel>"),
       "/dev/sda"},
      {Replace(
           kExported, devices_end,
           "<interface type='ethernet'><script path='/tmp/evil.sh'/></interface>" + devices_end),
       "/tmp/evil.sh"},
      {Replace(kExported, "/dev/urandom", "/dev/sda"), "/dev/sda"},
      {Replace(kExported, "<readonly/>",
               "<readonly/></disk><disk type='file' device='disk'>"
               "<driver name='qemu' type='raw'/><source "
               "file='/dev/sdb'/><target dev='vdc'/>"),
       "disk vdc"},
  };
  for (const auto& c : cases) {
    auto out = SanitizeRestored(Restored(c.xml));
    EXPECT_EQ(out.status().code(), Code::kInvalidArgument) << c.says;
    EXPECT_NE(out.status().message().find(c.says), std::string::npos)
        << out.status().ToString() << " should say " << c.says;
  }
}

TEST(SanitizeRestoredTest, RefusesBootFilesTheExportDoesNotCarryAndMissingDisks) {
  RestoredDefinition r = Restored(kExported);
  r.kernel = "";
  auto no_kernel = SanitizeRestored(r);
  EXPECT_EQ(no_kernel.status().code(), Code::kInvalidArgument);
  EXPECT_NE(no_kernel.status().message().find("/boot/vmlinuz"), std::string::npos)
      << no_kernel.status().ToString();
  r = Restored(kExported);
  r.disks.push_back("/img/x-restored-d1.qcow2");
  EXPECT_EQ(SanitizeRestored(r).status().code(), Code::kInvalidArgument);
}

TEST(SanitizeRestoredTest, BootFilesOfNamesKernelAndInitrd) {
  auto b = BootFilesOf(kExported);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->kernel, "/boot/vmlinuz");
  EXPECT_EQ(b->initrd, "/boot/initrd.gz");
  EXPECT_EQ(b->definition, kExported);
}

}  // namespace
}  // namespace vmgroup::hypervisor::libvirt

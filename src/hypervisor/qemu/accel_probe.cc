#include "hypervisor/qemu/accel_probe.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>

namespace vmgroup::hypervisor::qemu {
namespace {

// QEMU's pc machine maps a -bios image (a multiple of 64 KiB) to end at
// 4 GiB, its last 64 KiB also at 0xf0000; the CPU starts 16 bytes below
// the end, in real mode.
constexpr size_t kFirmwareSize = 64 * 1024;
constexpr size_t kResetVector = kFirmwareSize - 16;

// The program at the image's start (0xf0000), assembled from GNU as
// source whose instructions are the comments. The GDT is copied to RAM
// before it is loaded: loading a segment sets its descriptor's accessed bit,
// a write that a GDT in the read-only firmware would turn into a trap on
// every load.
constexpr uint8_t kProgram[] = {
    // Real mode, at 0xf0000: copy the GDT to RAM (0x500), enter protected mode.
    0xfa,                                            // cli
    0x31, 0xc0,                                      // xor %ax,%ax
    0x8e, 0xc0,                                      // mov %ax,%es
    0xb8, 0x00, 0xf0,                                // mov $0xf000,%ax
    0x8e, 0xd8,                                      // mov %ax,%ds
    0xbe, 0xb9, 0x00,                                // mov $0xb9,%si
    0xbf, 0x00, 0x05,                                // mov $0x500,%di
    0xb9, 0x26, 0x00,                                // mov $0x26,%cx
    0xfc,                                            // cld
    0xf3, 0xa4,                                      // rep movsb %ds:(%si),%es:(%di)
    0x31, 0xc0,                                      // xor %ax,%ax
    0x8e, 0xd8,                                      // mov %ax,%ds
    0x66, 0x0f, 0x01, 0x16, 0x20, 0x05,              // lgdtl 0x520
    0x0f, 0x20, 0xc0,                                // mov %cr0,%eax
    0x66, 0x83, 0xc8, 0x01,                          // or $0x1,%eax
    0x0f, 0x22, 0xc0,                                // mov %eax,%cr0
    0x66, 0xea, 0x32, 0x00, 0x0f, 0x00, 0x08, 0x00,  // ljmpl $0x8,$0xf0032
    // 32-bit protected mode: one 2 MiB page mapped at 0, PAE, long mode, paging.
    0x66, 0xb8, 0x10, 0x00,                                      // mov $0x10,%ax
    0x8e, 0xd8,                                                  // mov %eax,%ds
    0x8e, 0xc0,                                                  // mov %eax,%es
    0x8e, 0xd0,                                                  // mov %eax,%ss
    0xc7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x03, 0x20, 0x00, 0x00,  // movl $0x2003,0x1000
    0xc7, 0x05, 0x04, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // movl $0x0,0x1004
    0xc7, 0x05, 0x00, 0x20, 0x00, 0x00, 0x03, 0x30, 0x00, 0x00,  // movl $0x3003,0x2000
    0xc7, 0x05, 0x04, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // movl $0x0,0x2004
    0xc7, 0x05, 0x00, 0x30, 0x00, 0x00, 0x83, 0x00, 0x00, 0x00,  // movl $0x83,0x3000
    0xc7, 0x05, 0x04, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // movl $0x0,0x3004
    0x0f, 0x20, 0xe0,                                            // mov %cr4,%eax
    0x83, 0xc8, 0x20,                                            // or $0x20,%eax
    0x0f, 0x22, 0xe0,                                            // mov %eax,%cr4
    0xb8, 0x00, 0x10, 0x00, 0x00,                                // mov $0x1000,%eax
    0x0f, 0x22, 0xd8,                                            // mov %eax,%cr3
    0xb9, 0x80, 0x00, 0x00, 0xc0,                                // mov $0xc0000080,%ecx
    0x0f, 0x32,                                                  // rdmsr
    0x0d, 0x00, 0x01, 0x00, 0x00,                                // or $0x100,%eax
    0x0f, 0x30,                                                  // wrmsr
    0x0f, 0x20, 0xc0,                                            // mov %cr0,%eax
    0x0d, 0x00, 0x00, 0x00, 0x80,                                // or $0x80000000,%eax
    0x0f, 0x22, 0xc0,                                            // mov %eax,%cr0
    0xea, 0xa9, 0x00, 0x0f, 0x00, 0x18, 0x00,                    // ljmp $0x18,$0xf00a9
    // 64-bit long mode: 10^7 turns of a loop, then write 0x2a to isa-debug-exit.
    0xb9, 0x80, 0x96, 0x98, 0x00,  // mov $0x989680,%ecx
    0xff, 0xc9,                    // dec %ecx
    0x75, 0xfc,                    // jne 0xae
    0xb0, 0x2a,                    // mov $0x2a,%al
    0xe6, 0xf4,                    // out %al,$0xf4
    0xf4,                          // hlt
    0xeb, 0xfd,                    // jmp 0xb6
    // The GDT (null, 32-bit code 0x08, data 0x10, 64-bit code 0x18) and
    // its descriptor (limit 0x1f, base 0x500), copied to 0x500 above.
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //
    0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00,  //
    0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00,  //
    0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xaf, 0x00,  //
    0x1f, 0x00, 0x00, 0x05, 0x00, 0x00,              //
};
// At the reset vector: ljmp $0xf000,$0 (to kProgram, through the copy at 0xf0000).
constexpr uint8_t kReset[] = {0xea, 0x00, 0x00, 0x00, 0xf0};

// isa-debug-exit ends QEMU with status (value << 1) | 1 for the value the
// guest writes to its port: 0x2a above.
constexpr int kReportedExit = (0x2a << 1) | 1;

std::string Firmware() {
  std::string image(kFirmwareSize, '\xf4');  // hlt everywhere else
  std::memcpy(image.data(), kProgram, sizeof kProgram);
  std::memcpy(image.data() + kResetVector, kReset, sizeof kReset);
  return image;
}

// The end of QEMU's stderr on one line (it goes into one log line).
std::string Tail(const std::string& text, size_t n) {
  std::string tail = text.size() > n ? text.substr(text.size() - n) : text;
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
  for (char& c : tail) {
    if (c == '\n') c = ' ';
  }
  return tail;
}

}  // namespace

Status ProbeAccel(Env* env, std::string_view accel, const AccelProbe& probe) {
  // A directory of our own (mkdtemp: no name another user can take
  // first), opened to QEMU's user for the one file it reads.
  std::string dir = probe.dir + "/vmgroup-accel-probe-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr || ::chmod(dir.c_str(), 0711) != 0) {
    return Status::IoError("cannot make a directory in " + probe.dir +
                           " for the accelerator probe: " + std::strerror(errno));
  }
  const std::string image = dir + "/firmware.bin";
  Status status = env->WriteFile(image, Firmware());
  if (status.ok()) {
    std::vector<std::string> argv = probe.run_as;
    argv.insert(argv.end(), {probe.binary, "-accel", std::string(accel), "-nodefaults",
                             "-no-user-config", "-display", "none", "-m", "16", "-bios", image,
                             "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-no-reboot"});
    auto run = env->Run(argv, probe.deadline);
    if (!run.ok()) {
      status = run.status().Annotate("the probe's guest under " + std::string(accel));
    } else if (run->exit_code != kReportedExit) {
      status = Status::Unavailable("QEMU under " + std::string(accel) +
                                   " ended without the probe guest's report (exit " +
                                   std::to_string(run->exit_code) + "): " + Tail(run->err, 500));
    }
  }
  (void)env->RemoveFile(image);
  (void)env->RemoveDir(dir);
  return status;
}

}  // namespace vmgroup::hypervisor::qemu

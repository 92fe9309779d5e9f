#include "base/env.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

namespace vmgroup {
namespace {

TEST(EnvTest, RunCapturesOutputAndExitCode) {
  Env* env = Env::Default();
  auto r = env->Run({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
}

TEST(EnvTest, RunOfMissingProgramIsUnavailable) {
  auto r = Env::Default()->Run({"/nonexistent/program"});
  EXPECT_EQ(r.status().code(), Code::kUnavailable);
}

TEST(EnvTest, RunPastTimeoutKillsTheChild) {
  auto r = Env::Default()->Run({"sleep", "10"}, std::chrono::milliseconds(100));
  EXPECT_EQ(r.status().code(), Code::kTimeout);
}

TEST(EnvTest, WriteFileReplacesWholeAndRemoveDirTakesEmptyDirs) {
  Env* env = Env::Default();
  char dir[] = "/tmp/vmg-env-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string sub = std::string(dir) + "/sub", file = sub + "/f";
  ASSERT_TRUE(env->CreateDirs(sub).ok());
  ASSERT_TRUE(env->WriteFile(file, "first, longer").ok());
  ASSERT_TRUE(env->WriteFile(file, "second").ok());
  EXPECT_EQ(*env->ReadFile(file), "second");
  EXPECT_TRUE(env->StartWriteback(file).ok());
  EXPECT_EQ(env->StartWriteback(sub + "/none").code(), Code::kFileNotFound);
  EXPECT_EQ(*env->ListDir(sub), std::vector<std::string>{"f"});  // no temporary left
  // A directory with a file in it stays, with a reason.
  EXPECT_EQ(env->RemoveDir(sub).code(), Code::kIoError);
  ASSERT_TRUE(env->RemoveFile(file).ok());
  EXPECT_TRUE(env->RemoveDir(sub).ok());
  EXPECT_TRUE(env->RemoveDir(sub).ok());  // already gone
  // Into a directory that does not exist: an error, nothing made.
  EXPECT_EQ(env->WriteFile(sub + "/g", "x").code(), Code::kIoError);
  EXPECT_TRUE(env->RemoveDir(dir).ok());
}

TEST(EnvTest, OpenFileSaysWhatIsMissingOrThereAlready) {
  Env* env = Env::Default();
  char dir[] = "/tmp/vmg-env-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string file = std::string(dir) + "/f";
  auto made = env->OpenFile(file, O_WRONLY | O_CREAT | O_EXCL, 0600);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  EXPECT_NE(::fcntl(made->get(), F_GETFD) & FD_CLOEXEC, 0);
  ASSERT_EQ(::write(made->get(), "x", 1), 1);
  struct stat st;
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = env->OpenFile(file, O_WRONLY | O_CREAT | O_EXCL, 0600);
  EXPECT_EQ(again.status().code(), Code::kAlreadyExists);
  EXPECT_NE(again.status().message().find(file), std::string::npos);
  auto read = env->OpenFile(file, O_RDONLY, 0);
  ASSERT_TRUE(read.ok());
  char c = 0;
  EXPECT_EQ(::read(read->get(), &c, 1), 1);
  EXPECT_EQ(c, 'x');
  EXPECT_EQ(env->OpenFile(file + "-gone", O_RDONLY, 0).status().code(), Code::kFileNotFound);
  EXPECT_EQ(env->OpenFile(file + "/under-a-file", O_RDONLY, 0).status().code(), Code::kIoError);
  EXPECT_TRUE(env->RemoveFile(file).ok());
  EXPECT_TRUE(env->RemoveDir(dir).ok());
}

TEST(EnvTest, SpawnKillAndWaitGone) {
  Env* env = Env::Default();
  char dir[] = "/tmp/vmg-env-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string log = std::string(dir) + "/log";
  auto pid = env->Spawn({"sh", "-c", "echo started; exec sleep 30"}, {.log_path = log});
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  EXPECT_TRUE(env->IsAlive(*pid));
  // The child's output reaches the log (wait for it: the child runs on its own).
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (env->ReadFile(log).value_or("") != "started\n" && Clock::now() < deadline) {
    env->SleepFor(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(env->Kill(*pid, SIGKILL).ok());
  EXPECT_TRUE(env->WaitGone(*pid, std::chrono::seconds(5)).ok());
  EXPECT_FALSE(env->IsAlive(*pid));
  EXPECT_EQ(env->ReadFile(log).value_or(""), "started\n");
  EXPECT_EQ(env->ReadFile(std::string(dir) + "/none").status().code(), Code::kFileNotFound);
  EXPECT_TRUE(env->RemoveFile(log).ok());
  EXPECT_TRUE(env->RemoveFile(log).ok()) << "removing a missing file is OK";
  EXPECT_FALSE(env->FileExists(log));
  ASSERT_EQ(rmdir(dir), 0);
}

// A held child runs nothing until admitted, and nothing at all if refused;
// its pid and start time are known while it is held and stay the same once
// it runs its command.
TEST(EnvTest, AHeldChildRunsItsCommandOnlyOnceAdmitted) {
  Env* env = Env::Default();
  char dir[] = "/tmp/vmg-env-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string log = std::string(dir) + "/log", ran = std::string(dir) + "/ran";
  int64_t held_since = -1;
  auto pid = env->Spawn({"sh", "-c", "echo $$ > \"$0\"; exec sleep 30", ran},
                        {.log_path = log, .admit = [&](int held) {
                           // Give a child that was not held the time to run.
                           env->SleepFor(std::chrono::milliseconds(200));
                           EXPECT_FALSE(env->FileExists(ran)) << "ran before it was admitted";
                           held_since = env->ProcessStartTime(held).value_or(-2);
                           return Status::Ok();
                         }});
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (env->ReadFile(ran).value_or("").empty() && Clock::now() < deadline) {
    env->SleepFor(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(env->ReadFile(ran).value_or(""), std::to_string(*pid) + "\n") << "the same process";
  EXPECT_GT(held_since, 0);
  EXPECT_EQ(env->ProcessStartTime(*pid).value_or(-3), held_since);
  ASSERT_TRUE(env->Kill(*pid, SIGKILL).ok());
  ASSERT_TRUE(env->WaitGone(*pid, std::chrono::seconds(5)).ok());
  EXPECT_EQ(env->ProcessStartTime(*pid).status().code(), Code::kUnavailable);

  // Refused: the admit's error, and the command never runs.
  ASSERT_TRUE(env->RemoveFile(ran).ok());
  int refused = 0;
  auto no = env->Spawn({"sh", "-c", "echo ran > \"$0\"", ran},
                       {.log_path = log, .admit = [&](int held) {
                          refused = held;
                          return Status::IoError("cannot record it");
                        }});
  EXPECT_EQ(no.status().code(), Code::kIoError);
  EXPECT_GT(refused, 0);
  EXPECT_FALSE(env->IsAlive(refused));
  EXPECT_FALSE(env->FileExists(ran));

  // Its parent dies while it is held (in admit, before any answer): it
  // exits by itself, its command never run.
  int ends[2];
  ASSERT_EQ(pipe(ends), 0);
  const pid_t parent = fork();
  ASSERT_GE(parent, 0);
  if (parent == 0) {
    close(ends[0]);
    (void)env->Spawn({"sh", "-c", "echo ran > \"$0\"", ran},
                     {.log_path = log, .admit = [&](int held) -> Status {
                        (void)!write(ends[1], &held, sizeof held);
                        _exit(0);
                      }});
    _exit(1);
  }
  close(ends[1]);
  int orphan = 0;
  ASSERT_EQ(read(ends[0], &orphan, sizeof orphan), static_cast<ssize_t>(sizeof orphan));
  close(ends[0]);
  ASSERT_EQ(waitpid(parent, nullptr, 0), parent);
  EXPECT_TRUE(env->WaitGone(orphan, std::chrono::seconds(10)).ok()) << "the held child stayed";
  EXPECT_FALSE(env->FileExists(ran));
  EXPECT_TRUE(env->RemoveFile(log).ok());
  ASSERT_EQ(rmdir(dir), 0);
}

TEST(EnvTest, SchedulingOfThreadsAndTheThreadsOfAProcess) {
  // On a thread of its own, so the test runner keeps its scheduling.
  std::thread([] {
    Env* env = Env::Default();
    auto before = env->GetScheduling(0);
    ASSERT_TRUE(before.ok()) << before.status().ToString();
    EXPECT_FALSE(before->realtime);
    // A higher niceness needs no privilege.
    ASSERT_TRUE(env->SetScheduling(0, {false, before->level + 1}).ok());
    EXPECT_EQ(*env->GetScheduling(0), (Scheduling{false, before->level + 1}));
    // Raising needs privilege; where it is allowed, it reads back, is not
    // passed on to the threads the raised one starts, and goes back.
    auto born = [&] {
      Result<Scheduling> s = Status::Unavailable("not run");
      std::thread([&] { s = env->GetScheduling(0); }).join();
      return s;
    };
    for (const Scheduling raised : {Scheduling{true, 1}, Scheduling{false, -5}}) {
      if (!env->SetScheduling(0, raised).ok()) continue;
      EXPECT_EQ(*env->GetScheduling(0), raised);
      EXPECT_EQ(*born(), (Scheduling{false, 0}));
      ASSERT_TRUE(env->SetScheduling(0, {false, 0}).ok());
      EXPECT_EQ(*env->GetScheduling(0), (Scheduling{false, 0}));
    }
  }).join();
  // A child started real time passes it on to what it starts; without the
  // privilege it starts all the same, as usual.
  bool privileged = false;
  std::thread([&] {
    privileged = Env::Default()->SetScheduling(0, {true, 1}).ok();
    (void)Env::Default()->SetScheduling(0, {false, 0});
  }).join();
  auto parent = Env::Default()->Spawn({"sh", "-c", "sleep 30 & wait"},
                                      {.log_path = "/dev/null", .realtime_priority = 1});
  ASSERT_TRUE(parent.ok()) << parent.status().ToString();
  int child = 0;
  for (int i = 0; i < 500 && child == 0; ++i) {
    std::ifstream children("/proc/" + std::to_string(*parent) + "/task/" + std::to_string(*parent) +
                           "/children");
    if (!(children >> child)) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GT(child, 0) << "sh started no sleep";
  const Scheduling started = privileged ? Scheduling{true, 1} : Scheduling{false, 0};
  EXPECT_EQ(*Env::Default()->GetScheduling(*parent), started);
  EXPECT_EQ(*Env::Default()->GetScheduling(child), started);
  ASSERT_TRUE(Env::Default()->Kill(child, SIGKILL).ok());
  ASSERT_TRUE(Env::Default()->Kill(*parent, SIGKILL).ok());
  ASSERT_TRUE(Env::Default()->WaitGone(*parent, std::chrono::seconds(5)).ok());

  auto pid = Env::Default()->Spawn({"sleep", "30"}, {.log_path = "/dev/null"});
  ASSERT_TRUE(pid.ok());
  auto threads = Env::Default()->Threads(*pid);
  ASSERT_TRUE(threads.ok()) << threads.status().ToString();
  ASSERT_EQ(threads->size(), 1u);
  EXPECT_EQ((*threads)[0].tid, *pid);
  EXPECT_EQ((*threads)[0].name, "sleep");
  ASSERT_TRUE(Env::Default()->Kill(*pid, SIGKILL).ok());
  ASSERT_TRUE(Env::Default()->WaitGone(*pid, std::chrono::seconds(5)).ok());
  EXPECT_EQ(Env::Default()->Threads(*pid).status().code(), Code::kUnavailable);
}

// The signals a status file says are blocked and ignored, as "blocked
// ignored" in hex, without glibc's own two (32 and 33, which posix_spawn
// leaves ignored in every child and no program may use).
std::string Signals(const std::string& status) {
  auto mask = [&](const std::string& field) {
    const size_t at = status.find(field + ":\t");
    if (at == std::string::npos) return std::string("?");
    const uint64_t bits = std::stoull(status.substr(at + field.size() + 2, 16), nullptr, 16);
    std::ostringstream hex;
    hex << std::hex << (bits & ~(uint64_t{3} << 31));
    return hex.str();
  };
  return mask("SigBlk") + " " + mask("SigIgn");
}

TEST(EnvTest, ChildrenStartWithDefaultSignalsWhateverTheParentSet) {
  // As vmgroupd: SIGTERM and SIGINT blocked for sigwait, SIGPIPE ignored.
  struct sigaction ignore {
  }, before{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGPIPE, &ignore, &before), 0);
  std::string run_status, spawn_status;
  std::thread([&] {
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, nullptr);
    Env* env = Env::Default();
    auto r = env->Run({"cat", "/proc/self/status"});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    run_status = r->out;
    char dir[] = "/tmp/vmg-env-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string log = std::string(dir) + "/log";
    auto pid = env->Spawn({"cat", "/proc/self/status"}, {.log_path = log});
    ASSERT_TRUE(pid.ok()) << pid.status().ToString();
    ASSERT_TRUE(env->WaitGone(*pid, std::chrono::seconds(10)).ok());
    spawn_status = env->ReadFile(log).value_or("");
    ASSERT_TRUE(env->RemoveFile(log).ok());
    ASSERT_EQ(rmdir(dir), 0);
  }).join();
  ASSERT_EQ(sigaction(SIGPIPE, &before, nullptr), 0);
  EXPECT_EQ(Signals(run_status), "0 0") << "Run: none blocked, none ignored";
  EXPECT_EQ(Signals(spawn_status), "0 0") << "Spawn: none blocked, none ignored";
}

TEST(EnvTest, SpawnHandsTheChildItsStdinAndPassedDescriptors) {
  Env* env = Env::Default();
  char dir[] = "/tmp/vmg-env-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string log = std::string(dir) + "/log", out = std::string(dir) + "/out";
  int in[2];
  ASSERT_EQ(pipe2(in, O_CLOEXEC), 0);
  const int file = open(out.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(file, 0);
  // Descriptor 3 of the child is our `file`, whatever number ours has.
  auto pid = env->Spawn({"sh", "-c", "cat >&3; echo done"},
                        {.log_path = log, .stdin_fd = in[0], .fds = {{file, 3}}});
  ASSERT_TRUE(pid.ok()) << pid.status().ToString();
  close(in[0]);
  close(file);
  ASSERT_EQ(write(in[1], "through the pipe", 16), 16);
  close(in[1]);  // the child's stdin ends: ours was the last write end
  ASSERT_TRUE(env->WaitGone(*pid, std::chrono::seconds(10)).ok());
  EXPECT_EQ(env->ReadFile(out).value_or(""), "through the pipe");
  EXPECT_EQ(env->ReadFile(log).value_or(""), "done\n");
  EXPECT_EQ(env->Spawn({"true"}, {.log_path = log, .fds = {{0, 2}}}).status().code(),
            Code::kInvalidArgument);
  ASSERT_TRUE(env->RemoveFile(out).ok());
  ASSERT_TRUE(env->RemoveFile(log).ok());
  ASSERT_EQ(rmdir(dir), 0);
}

TEST(EnvTest, KillRefusesNonPositivePids) {
  EXPECT_EQ(Env::Default()->Kill(0, SIGTERM).code(), Code::kInvalidArgument);
  EXPECT_EQ(Env::Default()->Kill(-1, SIGTERM).code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace vmgroup

// Where an application-consistent snapshot's freeze window goes, guest by
// guest: when each guest's freeze was sent and answered, when its cut
// (switch) returned, when its thaw was sent and answered, in microseconds
// from the round's first freeze sent; and how long the guests wrote
// before that freeze (since the previous round's last thaw answered): what
// a freeze flushes. Both sides of app_consistency_bench
// record one per guest per round; printed as medians and p95 of each part,
// and as JSON (the libvirt worker hands its timelines back so).
#pragma once

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <vector>

#include "report.h"
#include "stats.h"

namespace vmgroup::bench {

struct GuestTimeline {
  int64_t freeze_sent = 0, freeze_answered = 0, cut = 0, thaw_sent = 0, thaw_answered = 0;
};
struct RoundTimeline {
  int64_t wrote_for = 0;  // 0 for a round with no previous one
  std::vector<GuestTimeline> guests;
};

// Makes each time of `round` relative to its earliest freeze sent, and sets
// its wrote_for from `*last_thaw` (the previous round's last thaw answered,
// on the same clock; 0 for none), which it then advances to this round's.
inline void Rebase(RoundTimeline& round, int64_t* last_thaw) {
  if (round.guests.empty()) return;
  int64_t first = round.guests[0].freeze_sent, last = 0;
  for (const auto& g : round.guests) {
    first = std::min(first, g.freeze_sent);
    last = std::max(last, g.thaw_answered);
  }
  round.wrote_for = *last_thaw > 0 ? first - *last_thaw : 0;
  *last_thaw = last;
  for (auto& g : round.guests) {
    for (int64_t* t : {&g.freeze_sent, &g.freeze_answered, &g.cut, &g.thaw_sent, &g.thaw_answered})
      *t -= first;
  }
}

inline nlohmann::json ToJson(const std::vector<RoundTimeline>& rounds) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& round : rounds) {
    nlohmann::json r = nlohmann::json::array();
    for (const auto& g : round.guests) {
      r.push_back({g.freeze_sent, g.freeze_answered, g.cut, g.thaw_sent, g.thaw_answered});
    }
    j.push_back({{"wrote_for", round.wrote_for}, {"guests", r}});
  }
  return j;
}

inline std::vector<RoundTimeline> TimelinesFromJson(const nlohmann::json& j) {
  std::vector<RoundTimeline> rounds;
  for (const auto& r : j) {
    RoundTimeline round{.wrote_for = r.value("wrote_for", int64_t{0})};
    for (const auto& g : r.at("guests")) {
      const auto t = g.get<std::vector<int64_t>>();
      if (t.size() == 5) round.guests.push_back({t[0], t[1], t[2], t[3], t[4]});
    }
    rounds.push_back(round);
  }
  return rounds;
}

inline constexpr const char* kTimelineHeader =
    "who         | wrote for   | freeze sent | freeze took | all frozen  | cut (switch) "
    "| thaw sent   | thaw took   | window\n";

// One row of medians/p95 (ms): per guest for the sent, took and cut
// columns; per round for "wrote for", "all frozen" (last freeze answered)
// and "window" (last thaw answered).
inline void PrintTimelineRow(const char* who, const std::vector<RoundTimeline>& rounds) {
  std::vector<int64_t> wrote, sent, took, cut, thaw_sent, thaw_took, all_frozen, window;
  for (const auto& round : rounds) {
    if (round.wrote_for > 0) wrote.push_back(round.wrote_for);
    int64_t frozen = 0, last = 0;
    for (const auto& g : round.guests) {
      sent.push_back(g.freeze_sent);
      took.push_back(g.freeze_answered - g.freeze_sent);
      cut.push_back(g.cut);
      thaw_sent.push_back(g.thaw_sent);
      thaw_took.push_back(g.thaw_answered - g.thaw_sent);
      frozen = std::max(frozen, g.freeze_answered);
      last = std::max(last, g.thaw_answered);
    }
    all_frozen.push_back(frozen);
    window.push_back(last);
  }
  std::printf("%-11s", who);
  for (const auto* v : {&wrote, &sent, &took, &all_frozen, &cut, &thaw_sent, &thaw_took, &window}) {
    std::printf(" | %5.1f %5.1f", Ms(Median(*v)), Ms(P95(*v)));
  }
  std::printf("\n");
}

}  // namespace vmgroup::bench

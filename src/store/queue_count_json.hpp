#pragma once
// One queue's job counts as the JSON object `hostq jobs --counts --json` prints (a contract:
// these keys, in this order); the HTTP dashboard serves the same objects.
#include "common/json.hpp"
#include "store/store.hpp"

namespace hostq {

inline Json queueCountJson(const QueueCount& c) {
  Json w = Json::object();
  w["queue"] = c.queue;
  w["queued"] = c.queued;
  w["future"] = c.future;
  w["blocked"] = c.blocked;
  w["running"] = c.running;
  w["prefetched"] = c.prefetched;
  w["held"] = c.on_hold;
  w["failed"] = c.failed;
  return w;
}

}  // namespace hostq

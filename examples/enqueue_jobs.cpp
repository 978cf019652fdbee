// An enqueuing program: the application side of minimal_worker. Creates or upgrades the schema,
// enqueues work for minimal_worker's handlers, and prints what is waiting per queue.
//   HOSTQ_DATABASE_URL=postgresql:///jobs enqueue_jobs [QUEUE] [COUNT]
// then run `minimal_worker [QUEUE]` to work them off.
#include <hostq/client.hpp>
#include <hostq/config.hpp>
#include <hostq/version.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  const std::string queue = argc > 1 ? argv[1] : "queue";
  const int count = argc > 2 ? std::atoi(argv[2]) : 10;
  if (count < 1) {
    std::fprintf(stderr, "usage: enqueue_jobs [QUEUE] [COUNT >= 1]\n");
    return 2;
  }
  try {
    hostq::Client client({.database_url = hostq::resolveDatabaseUrl("")});
    const int applied = client.migrate();
    std::printf("libhostq %s, schema version %d (%d migrations applied)\n", hostq::version(),
                client.schemaVersion(), applied);

    // One job, with its id back.
    const auto greet = client.enqueue({.tag = "greet", .payload = "world", .queue = queue});
    std::printf("greet: job %lld\n", static_cast<long long>(greet.id));

    // A strand: its jobs run one at a time, in this order, whichever workers take them.
    std::vector<hostq::NewJob> resizes;
    for (const char* size : {"640x480", "1280x720", "banana"}) {  // the last one fails
      resizes.push_back({.tag = "resize", .payload = size, .queue = queue, .strand = "thumbnails:42"});
    }
    for (const auto& e : client.enqueueMany(resizes)) std::printf("resize: job %lld\n", static_cast<long long>(e.id));

    // Many plain jobs at once, by COPY: no ids come back.
    const std::vector<hostq::NewJob> many(static_cast<std::size_t>(count),
                                          {.tag = "greet", .payload = "bulk", .queue = queue});
    std::printf("bulk: %zu jobs\n", client.enqueueBulk(many));

    for (const auto& c : client.counts(hostq::CountBy::Queue, {.queue = queue})) {
      std::printf("queue %s: %lld queued, %lld blocked, %lld running, %lld failed\n", c.key.c_str(),
                  static_cast<long long>(c.queued), static_cast<long long>(c.blocked),
                  static_cast<long long>(c.running), static_cast<long long>(c.failed));
    }
    return 0;
  } catch (const hostq::ValidationError& e) {
    std::fprintf(stderr, "enqueue_jobs: refused: %s\n", e.what());
  } catch (const hostq::DbError& e) {
    std::fprintf(stderr, "enqueue_jobs: database (%s): %s\n", e.sqlstate().c_str(), e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "enqueue_jobs: %s\n", e.what());
  }
  return 1;
}

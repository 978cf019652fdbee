// A worker program: registers its handlers, then runs a pool (server + workers) of them.
//   HOSTQ_DATABASE_URL=postgresql:///jobs minimal_worker [QUEUE] [WORKERS]
// then e.g. `hostq enqueue greet world` and `hostq enqueue resize 640x480`. QUIT stops it
// gracefully, TERM/INT fast.
#include <hostq/pool.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  hostq::PoolOptions o;
  o.handlers.add("greet", [](const hostq::Job& job) { std::printf("hello, %s\n", job.payload.c_str()); });
  o.handlers.add("resize", [](const hostq::Job& job) {
    int w = 0, h = 0;
    if (std::sscanf(job.payload.c_str(), "%dx%d", &w, &h) != 2 || w <= 0 || h <= 0)
      return hostq::Outcome::failure("resize: expected WIDTHxHEIGHT, got '" + job.payload + "'");
    std::printf("resized to %d x %d\n", w, h);
    return hostq::Outcome::success();
  });
  hostq::WorkerSettings w;
  w.config.queue = argc > 1 ? argv[1] : "queue";
  w.config.workers = argc > 2 ? std::atoi(argv[2]) : 2;
  o.settings.workers.push_back(w);  // database_url and socket: HOSTQ_DATABASE_URL, HOSTQ_SOCKET
  return hostq::runPool(std::move(o));
}

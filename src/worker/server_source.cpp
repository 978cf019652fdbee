#include "worker/server_source.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <ctime>
#include <mutex>
#include <utility>

#include "common/monotonic_clock.hpp"
#include "control/backoff.hpp"
#include "control/control_client.hpp"
#include "protocol/codec.hpp"
#include "protocol/job_convert.hpp"
#include "shm/worker_segment.hpp"

namespace hostq::worker {

namespace {

bool readable(int fd) {
  if (fd < 0) return false;
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

/// The socket has something for us: in the client's buffer, or in the kernel.
bool socketHasInput(const control::ControlClient& c) { return c.hasBuffered() || readable(c.fd()); }

}  // namespace

struct ServerSource::Impl {
  ServerSource* owner = nullptr;  ///< told the decisions that arrive with acks
  std::string path;
  std::string name;
  WorkerConfig config;
  Transport transport;
  int interrupt_fd;

  /// The client is single-threaded; the signal watcher's abortRunning() is the one other
  /// thread that may use it, so every use happens under `client_mutex`. The main thread holds it
  /// for the whole of next/report/close (all its waits are bounded or woken by interrupt_fd,
  /// which the watcher writes before it asks for the lock).
  std::mutex client_mutex;
  control::ControlClient client;
  /// Returned by next() and not yet reported: the only job an abort may still fail.
  std::optional<JobId> in_hand;
  std::optional<shm::WorkerSegment> seg;
  control::Backoff backoff{control::Backoff::Options{std::chrono::milliseconds(10), std::chrono::milliseconds(1000), 2.0, 0.5}};
  std::uint64_t next_seq = 1;
  /// Results sent but not yet durable, in the order reported: resent after a reconnect. A
  /// vector, not a map: a node per job was the hand-off's one steady allocation.
  struct Unacked {
    JobId id;
    protocol::Message message;
  };
  std::vector<Unacked> unacked;
  std::vector<JobId> acked;  ///< a ResultAck's ids, sorted; reused
  /// Results not yet pushed, frame after frame: the last `held_count` entries of `unacked`.
  /// next() sends them in one ring record with the Reserve that follows (one record and at most
  /// one wake of the server per request, not two). While jobs are short they also wait for the
  /// jobs queued behind them, until the record is full or the worker waits: a no-op burn-down's
  /// 256 results per reply took 256 records, filled half the request ring and woke the server
  /// for it. Only with a segment; empty after a disconnect (connect() resends `unacked` instead).
  /// A worker killed with results here loses them; the server counts every job up to the
  /// slot's startedJob mark, in hand-out order, as begun (docs/server.md, "Which job was begun").
  std::vector<std::byte> held_result = std::vector<std::byte>(shm::kRequestPayloadMax);
  std::size_t held_len = 0;
  std::size_t held_count = 0;
  /// The reply being decoded, reused so that a JobAssigned's strings keep their buffers; the
  /// other replies (acks, notices) decode into `rx_other`, so that an ack between two jobs does
  /// not cost the next job's strings their buffers.
  protocol::Message rx;
  protocol::Message rx_other;
  /// Several jobs per request (docs/server.md, "Several jobs per request"): while this worker's
  /// jobs are short, a Reserve through the ring asks for up to kMaxJobsPerReserve, and the
  /// server's reply carries that many, frame after frame, in one ring record or a few. The jobs
  /// behind the first of a record wait here, in order, and next() hands them out without a
  /// round trip; the records after the first are read when this queue has run out. They are never run once the connection is
  /// gone: the server gives back whatever its worker held and had not begun (the slot's
  /// startedJob mark tells which one it had begun).
  static constexpr std::size_t kQueueCap = protocol::kMaxJobsPerReserve;
  std::array<Job, kQueueCap> queued;
  std::size_t queued_head = 0, queued_count = 0;
  std::uint16_t most_jobs = kQueueCap;  ///< the worker's jobs_per_request setting
  std::uint16_t asked = 1;           ///< max_jobs of the Reserve outstanding
  /// A Reserve is out and its first job has not come. While jobs are short it is sent ahead,
  /// as soon as the previous reply comes (docs/server.md, "A request ahead"); next() then waits
  /// for its reply rather than asking again.
  bool requested = false;
  std::uint64_t extra_seq = 0;       ///< the request whose reply may still carry jobs
  std::size_t extra_left = 0;        ///< how many more that reply may carry (in further records too)
  /// Jobs of that reply still to begin before a sleeping server is nudged for the request sent
  /// ahead: half of what it asked for. Counted per job, not read off the queue, which holds one
  /// record's jobs at a time.
  std::size_t until_nudge = 0;
  /// How long this worker's jobs take (EWMA of the time from next() to report()): a request
  /// asks for enough jobs to cover kBatchWindowNs of work, one when jobs are long.
  static constexpr double kBatchWindowNs = 100'000;
  double job_ns = 0;  ///< 0: no job timed yet (one job per request until jobs prove short)
  std::uint64_t started_ns = 0;
  /// Generation of a segment we could not attach: until a server of another generation
  /// answers, register over the socket (the server puts an shm worker's replies in a ring).
  std::optional<std::uint64_t> unusable_generation;
  bool stop = false;
  /// Registered, and the first Reserve of this connection not yet sent. That one goes over the
  /// socket, behind the results resent there, so the server sees them first: a job it handed us
  /// that has no result by our first request is one that never reached us.
  bool fresh = false;
  std::vector<std::byte> buf = std::vector<std::byte>(std::max(shm::kReplyPayloadMax, shm::kRequestPayloadMax));

  void dropQueued() {
    queued_count = 0;
    extra_left = 0;
  }

  /// Whether to ask ahead: only while jobs are short enough that a request takes several
  /// (jobs_per_request 1 turns it off, with the batching), and only through the ring.
  bool asksAhead() const { return seg && client.connected() && !fresh && jobsToAsk(false) > 1; }

  /// `a` is the first job of the reply to our outstanding request: the request is answered.
  void answered(const protocol::JobAssigned& a, bool from_ring) {
    client.setPendingReserve(std::nullopt);
    requested = false;
    extra_seq = a.request_seq;
    extra_left = from_ring ? asked - 1u : 0;
    until_nudge = from_ring ? asked / 2u : 0;
  }

  /// Whether `m` continues the reply of request `extra_seq` in a further ring record.
  bool continuesReply(const protocol::Message& m) const {
    const auto* a = std::get_if<protocol::JobAssigned>(&m);
    return a != nullptr && extra_left > 0 && a->request_seq == extra_seq &&
           a->request_seq != client.pendingReserve().value_or(0);
  }

  void disconnect() {
    dropQueued();
    requested = false;
    held_len = 0;
    held_count = 0;
    seg.reset();
    client.close();
  }

  /// Sleeps `d` unless interrupted; false when interrupted.
  bool pause(std::chrono::milliseconds d) {
    pollfd p{interrupt_fd, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(d.count())) <= 0;
  }

  /// Connects and registers; resends unacknowledged results. false = interrupted.
  bool connect() {
    while (!client.connected()) {
      if (readable(interrupt_fd)) return false;
      auto st = client.connect(path, std::chrono::milliseconds(2000));
      if (st.ok()) {
        protocol::Hello h;
        h.name = name;
        h.pid = static_cast<std::int32_t>(::getpid());
        h.config = config;
        h.transport = transport == Transport::Shm && !unusable_generation ? protocol::Transport::Shm
                                                                           : protocol::Transport::Socket;
        auto r = client.hello(h, std::chrono::milliseconds(5000), interrupt_fd);
        if (r.ok()) {
          auto& reply = r.value();
          seg.reset();  // never keep using the previous connection's segment
          if (unusable_generation && *unusable_generation != reply.ok.generation) unusable_generation.reset();
          if (reply.ok.slot && reply.segment_fd.valid()) {
            auto s = shm::WorkerSegment::attach(reply.segment_fd.get(), *reply.ok.slot, reply.ok.generation);
            if (s) {
              seg.emplace(std::move(s.value()));
            } else {
              // The server now writes our replies into a ring we cannot read (a corrupt or
              // foreign segment): this registration would wait forever. Register again, over
              // the socket, until a new server generation offers a fresh segment.
              spdlog::warn("cannot attach the server's segment; registering over the socket");
              unusable_generation = reply.ok.generation;
              client.close();
              continue;
            }
          }
          backoff.reset();
          fresh = true;
          // A new connection: whatever the old one had asked for is not outstanding here (a
          // client that closed itself, on a protocol error or EOF, skipped disconnect()).
          requested = false;
          extra_left = 0;
          // Results the previous connection never saw acknowledged: the server adopts them
          // (compare-and-set) so each is written once. A job run twice (handed out again by a
          // restarted server before this resend) is resent once, with its latest result.
          dedupeUnacked();
          for (auto& u : unacked) {
            if (!client.send(u.message).ok()) break;
          }
          if (client.connected()) return true;
        } else {
          spdlog::debug("hello failed: {}", r.error().describe());
        }
      } else {
        spdlog::debug("connect {}: {}", path, st.error().describe());
      }
      client.close();
      if (!pause(backoff.next())) return false;
    }
    return true;
  }

  /// Sends a message, through the ring when possible. false = the connection broke.
  bool post(const protocol::Message& m, bool socket_only = false, bool wake = true) {
    if (seg && !socket_only) {
      auto enc = protocol::encodeInto(m, std::span<std::byte>(buf.data(), shm::kRequestPayloadMax));
      if (enc.ok()) {
        switch (seg->pushRequest(std::span<const std::byte>(buf.data(), enc.value()), wake)) {
          case shm::PushResult::Ok: return true;
          case shm::PushResult::Full:
          case shm::PushResult::TooLarge: break;
          case shm::PushResult::Corrupt:
          case shm::PushResult::Closed: return false;
        }
      }
    }
    if (std::holds_alternative<protocol::Reserve>(m)) client.setPendingReserve(std::nullopt);
    auto st = client.send(m);
    if (!st.ok()) spdlog::debug("send to server: {}", st.error().describe());
    return st.ok();
  }

  void dedupeUnacked() {
    std::vector<Unacked> kept;
    kept.reserve(unacked.size());
    for (auto it = unacked.rbegin(); it != unacked.rend(); ++it)
      if (std::none_of(kept.begin(), kept.end(), [&](const Unacked& k) { return k.id == it->id; }))
        kept.push_back(std::move(*it));
    std::reverse(kept.begin(), kept.end());
    unacked = std::move(kept);
  }

  void forgetAcked(const std::vector<JobId>& ids) {
    acked.assign(ids.begin(), ids.end());
    std::sort(acked.begin(), acked.end());
    std::erase_if(unacked, [&](const Unacked& u) { return std::binary_search(acked.begin(), acked.end(), u.id); });
    // Only a job handed out again (a restarted server) can have its held result acked here.
    held_count = std::min(held_count, unacked.size());
  }

  /// The held results over the socket, in order: the ring had no room for their record.
  bool sendHeldOverSocket(std::size_t count) {
    for (std::size_t i = unacked.size() - count; i < unacked.size(); ++i)
      if (!client.send(unacked[i].message).ok()) return false;
    return true;
  }

  /// Pushes the held results (no Reserve follows them now). false = the connection broke.
  /// `wake`: ring the server's doorbell if it sleeps (not for results a queued job follows at
  /// once).
  bool flushHeld(bool wake = true) {
    if (held_len == 0) return true;
    const std::size_t n = std::exchange(held_len, 0);
    const std::size_t count = std::exchange(held_count, 0);
    switch (seg->pushRequest(std::span<const std::byte>(held_result.data(), n), wake)) {
      case shm::PushResult::Ok: return true;
      case shm::PushResult::Full:
      case shm::PushResult::TooLarge: return sendHeldOverSocket(count);
      case shm::PushResult::Corrupt:
      case shm::PushResult::Closed: break;
    }
    return false;
  }

  /// The Reserve `m`, behind the held results in one record when all fit. false = broken.
  bool postReserve(const protocol::Message& m, bool socket_only, bool wake = true) {
    if (held_len == 0 || !seg || socket_only) return flushHeld() && post(m, socket_only, wake);
    auto enc = protocol::encodeInto(
        m, std::span<std::byte>(held_result.data() + held_len, held_result.size() - held_len));
    if (!enc.ok()) return flushHeld() && post(m);
    const std::size_t n = std::exchange(held_len, 0) + enc.value();
    const std::size_t count = std::exchange(held_count, 0);
    switch (seg->pushRequest(std::span<const std::byte>(held_result.data(), n), wake)) {
      case shm::PushResult::Ok: return true;
      case shm::PushResult::Full:
      case shm::PushResult::TooLarge:
        // Over the socket, in the same order.
        client.setPendingReserve(std::nullopt);
        return sendHeldOverSocket(count) && client.send(m).ok();
      case shm::PushResult::Corrupt:
      case shm::PushResult::Closed: break;
    }
    return false;
  }

  enum class Handled { Nothing, Job, Stop, Broken };

  /// `from_ring`: the socket client has already checked a JobAssigned it read (and cleared the
  /// pending request); a ring record is checked here against the same rule.
  Handled handle(protocol::Message& m, Job& out, bool from_ring) {
    if (auto* a = std::get_if<protocol::JobAssigned>(&m)) {
      if (from_ring) {
        if (auto bad = control::checkAssignment(*a, name, client.pendingReserve())) {
          spdlog::error("protocol error: {}", *bad);
          return Handled::Broken;
        }
      }
      answered(*a, from_ring);
      if (a->payload_omitted) {
        // Too large for a ring record: fetch it over the socket.
        if (!client.send(protocol::Message(protocol::FetchPayload{a->id})).ok()) return Handled::Broken;
        for (;;) {
          auto r = client.receive(std::chrono::milliseconds(10000), interrupt_fd);
          if (r.kind != control::ControlClient::Received::Kind::Message) return Handled::Broken;
          if (auto* p = std::get_if<protocol::Payload>(&*r.message); p && p->job_id == a->id) {
            a->payload = std::move(p->payload);
            break;
          }
          Job ignored;
          if (handle(*r.message, ignored, false) != Handled::Nothing) return Handled::Broken;
        }
      }
      protocol::assignJob(*a, out);
      return Handled::Job;
    }
    if (auto* ack = std::get_if<protocol::ResultAck>(&m)) {
      forgetAcked(ack->job_ids);
      for (const auto& decision : ack->failures) owner->decided(decision);
      return Handled::Nothing;
    }
    if (auto* n = std::get_if<protocol::Notice>(&m)) {
      spdlog::info("server notice: {}", n->text);
      // A stopping server will close; we reconnect to its successor. Only a drain notice that
      // asks workers to exit ends the worker.
      return Handled::Nothing;
    }
    if (auto* e = std::get_if<protocol::Error>(&m)) {
      spdlog::warn("server error: {}", e->reason);
      return Handled::Broken;
    }
    return Handled::Nothing;
  }

  /// Drains replies from the ring and (with `socket_too`) the socket without blocking.
  Handled poll(Job& out, bool socket_too = true) {
    if (seg) {
      for (;;) {
        std::size_t len = 0;
        const auto r = seg->popReply(std::span<std::byte>(buf.data(), buf.size()), len);
        if (r == shm::PopResult::Empty) break;
        if (r != shm::PopResult::Ok) return Handled::Broken;
        // A record holds one frame, or the jobs of one request frame after frame.
        Handled got = Handled::Nothing;
        for (std::span<const std::byte> rest(buf.data(), len); !rest.empty();) {
          auto frame = protocol::nextFrame(rest);
          std::optional<protocol::DecodeError> bad;
          protocol::Message* m = &rx;
          if (!frame.ok()) {
            bad = frame.error();
          } else {
            const auto head = protocol::decodeHeader(frame.value());
            if (head.ok() && head.value().type != static_cast<std::uint16_t>(protocol::MessageType::JobAssigned))
              m = &rx_other;
            bad = protocol::decodeInto(frame.value(), *m);
          }
          if (bad) {
            spdlog::error("bad reply record: {}", bad->describe());
            return Handled::Broken;
          }
          if (got == Handled::Job) {
            if (!queueExtra(*m)) return Handled::Broken;
            continue;
          }
          if (continuesReply(*m)) {
            // The first job of a further record of the reply we are taking: ours to run now.
            if (!takeExtra(*m, out)) return Handled::Broken;
            got = Handled::Job;
            continue;
          }
          got = handle(*m, out, true);
          if (got != Handled::Nothing && got != Handled::Job) return got;
        }
        if (got == Handled::Job) return got;
      }
      // The pidfd poll of closed() is a syscall: only when the caller looks around anyway.
      if (socket_too ? seg->closed() : seg->released()) return Handled::Broken;
    }
    while (socket_too && socketHasInput(client)) {
      auto r = client.receive(std::chrono::milliseconds(0), -1);
      using K = control::ControlClient::Received::Kind;
      if (r.kind == K::Timeout) break;
      if (r.kind != K::Message) {
        spdlog::debug("server connection: {}", r.error.describe());
        return Handled::Broken;
      }
      const auto h = handle(*r.message, out, false);
      if (h != Handled::Nothing) return h;
    }
    return Handled::Nothing;
  }

  /// A JobAssigned behind the first in a reply record (`m`): queued. false = the server broke
  /// the protocol (more jobs than asked, another request's, another worker's, not a job).
  bool queueExtra(protocol::Message& m) {
    if (queued_count == kQueueCap) {
      spdlog::error("protocol error: a reply record carries more jobs than this worker asked for");
      return false;
    }
    if (!takeExtra(m, queued[(queued_head + queued_count) % kQueueCap])) return false;
    ++queued_count;
    return true;
  }

  /// The job in `m`, one of the reply's jobs behind its first, into `out`. false = not one.
  bool takeExtra(protocol::Message& m, Job& out) {
    auto* a = std::get_if<protocol::JobAssigned>(&m);
    if (a == nullptr || extra_left == 0 || a->request_seq != extra_seq || a->payload_omitted ||
        a->locked_by != name) {
      spdlog::error("protocol error: a reply's further frame is not a job this worker asked for");
      return false;
    }
    --extra_left;
    protocol::assignJob(*a, out);
    return true;
  }

  /// The job now begun: in hand for an abort, and named in the slot for the server should this
  /// process die (what it holds besides is given back).
  NextStatus begin(Job& out) {
    in_hand = out.id;
    if (seg) seg->markStarted(static_cast<std::uint64_t>(out.id));
    started_ns = monotonicNs();
    return NextStatus::Job;
  }

  /// Jobs to ask for: enough to cover kBatchWindowNs at this worker's pace, through the ring only.
  std::uint16_t jobsToAsk(bool socket_only) const {
    if (!seg || socket_only || job_ns <= 0) return 1;
    const double n = kBatchWindowNs / std::max(job_ns, 1.0);
    return static_cast<std::uint16_t>(std::clamp(n, 1.0, static_cast<double>(most_jobs)));
  }

  /// Sends a Reserve (behind the held result, in one record, when both fit). false = broken.
  bool sendReserve(bool socket_only, bool wake = true, bool ahead = false) {
    const std::uint64_t seq = next_seq++;
    // A Reserve sent on the socket becomes the client's outstanding request by itself; one
    // sent through the ring must be registered, since its reply may come either way.
    if (seg && !socket_only) client.setPendingReserve(seq);
    asked = jobsToAsk(socket_only);
    protocol::Reserve reserve{seq, static_cast<std::int64_t>(monotonicNs())};
    reserve.max_jobs = asked;
    reserve.ahead = ahead;
    return postReserve(protocol::Message(reserve), socket_only, wake);
  }

  /// A reply has just come: while jobs are short, ask for the next jobs now, so that their
  /// reply is in the ring by the time this one's jobs are done (the ring hides the round trip
  /// behind up to 100 µs of work). Quietly: a server awake (or woken by another worker) serves
  /// it on its next pass, and next() nudges a sleeping one when half the jobs are done.
  bool askAheadIfShort() {
    if (requested || !asksAhead()) return true;
    if (!sendReserve(false, /*wake=*/false, /*ahead=*/true)) return false;
    requested = true;
    return true;
  }

  NextStatus next(Job& out) {
    if (queued_count > 0) {
      // The jobs the last reply carried, while the server still serves this slot (a server that
      // dropped us gives them back; we must not run them).
      if (stop || !seg || seg->released() || !client.connected()) {
        dropQueued();
      } else {
        // The results held go with a request ahead if none is out yet (which wakes the server).
        // Otherwise they wait for the next ones while jobs are short (report() pushes a full
        // record, quietly), or go now without waking a sleeping server: nothing waits on them.
        const bool ask = !requested && asksAhead();
        const bool sent = ask ? sendReserve(false, /*wake=*/true, /*ahead=*/true)
                              : (jobsToAsk(false) > 1 || flushHeld(/*wake=*/false));
        if (!sent) {
          disconnect();
          return next(out);
        }
        requested |= ask;
        std::swap(out, queued[queued_head]);
        queued_head = (queued_head + 1) % kQueueCap;
        --queued_count;
        if (requested && until_nudge > 0 && --until_nudge == 0) seg->nudgeServer();
        return begin(out);
      }
    }
    for (;;) {
      if (stop) return NextStatus::Stop;
      if (!connect()) return NextStatus::Interrupted;
      if (requested) {
        // Asked ahead, and its first job has not come (or the reply goes on in a further
        // record): the last result goes alone, and a sleeping server is woken unless a record
        // already waits here.
        if (!flushHeld(/*wake=*/false)) {
          disconnect();
          continue;
        }
        if (seg) seg->nudgeServer();
      } else {
        if (!sendReserve(std::exchange(fresh, false))) {
          disconnect();
          continue;
        }
        requested = true;
      }
      // The last result is in the ring (or on the socket) now: nothing begun is unreported.
      if (seg) seg->markStarted(0);
      // The socket and the interrupt fd are looked at (two syscalls) only when the ring has been
      // quiet for a wait: on the hot path a reply is in the ring after one spin.
      bool look_around = !seg;
      for (;;) {
        const auto h = poll(out, look_around || client.hasBuffered());
        if (h == Handled::Job) {
          if (!askAheadIfShort()) {
            // The job is ours at the server, which gives it back when it sees us gone.
            disconnect();
            break;
          }
          return begin(out);
        }
        if (h == Handled::Stop) return NextStatus::Stop;
        if (h == Handled::Broken) {
          disconnect();
          break;
        }
        if (look_around && readable(interrupt_fd)) {
          // The request stays outstanding at the server; a fresh connection is the clean state
          // if we come back.
          disconnect();
          return NextStatus::Interrupted;
        }
        if (seg) {
          const auto w = seg->waitForReply(std::chrono::milliseconds(50));
          if (w == shm::WaitOutcome::Closed) {
            disconnect();
            break;
          }
          look_around = w != shm::WaitOutcome::Ready;
        } else if (!client.hasBuffered()) {
          pollfd fds[2] = {{client.fd(), POLLIN, 0}, {interrupt_fd, POLLIN, 0}};
          ::poll(fds, 2, 1000);
        }
      }
    }
  }

  void report(const JobResult& r) {
    protocol::Message m = protocol::toResultFrame(r, next_seq++);
    in_hand.reset();
    if (started_ns != 0) {
      const auto took = std::max(1.0, static_cast<double>(monotonicNs() - std::exchange(started_ns, 0)));
      job_ns = job_ns <= 0 ? took : job_ns * 0.875 + took * 0.125;
    }
    if (seg && client.connected()) {
      // Behind the results held when it fits; otherwise those go first, quietly (the server
      // is woken when a worker waits, or when the ring is half full).
      auto enc = protocol::encodeInto(m, std::span<std::byte>(buf.data(), shm::kRequestPayloadMax));
      if (enc.ok()) {
        const std::size_t n = enc.value();
        if (held_len + n > held_result.size() && !flushHeld(/*wake=*/false)) disconnect();
        if (client.connected()) {
          std::memcpy(held_result.data() + held_len, buf.data(), n);
          held_len += n;
          ++held_count;
          unacked.push_back(Unacked{r.id, std::move(m)});
          return;  // pushed by next(), with the Reserve or the next results
        }
      } else if (!flushHeld()) {
        disconnect();
      }
    }
    unacked.push_back(Unacked{r.id, std::move(m)});
    if (!client.connected()) return;  // resent after the reconnect
    if (!post(unacked.back().message)) disconnect();
  }

  void close() {
    // Give the server a moment to make our last results durable, then say goodbye.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    Job ignored;
    // Never begun: the server gives them back once we are gone. The reply's further records,
    // should they still come, are still recognised as its (and ignored like these).
    queued_count = 0;
    if (seg && !flushHeld()) disconnect();
    if (seg) seg->markStarted(0);
    while (!unacked.empty() && std::chrono::steady_clock::now() < deadline) {
      if (!client.connected()) {
        if (!connect()) break;
      }
      if (poll(ignored) == Handled::Broken) {
        disconnect();
        continue;
      }
      queued_count = 0;  // a further record's jobs: ignored too
      if (unacked.empty()) break;
      if (seg) (void)seg->waitForReply(std::chrono::milliseconds(20));
      else if (!client.hasBuffered()) {
        pollfd p{client.fd(), POLLIN, 0};
        ::poll(&p, 1, 20);
      }
    }
    if (!unacked.empty()) spdlog::warn("{} results not acknowledged at exit", unacked.size());
    if (client.connected()) (void)client.send(protocol::Message(protocol::Goodbye{}));
    seg.reset();
    client.close();
  }
};

ServerSource::ServerSource(std::string socket_path, std::string name, WorkerConfig config,
                           Transport transport, int interrupt_fd, int jobs_per_request)
    : m_name(name), m_impl(std::make_unique<Impl>()) {
  m_impl->most_jobs = static_cast<std::uint16_t>(std::clamp<int>(jobs_per_request, 1, Impl::kQueueCap));
  m_impl->owner = this;
  m_impl->path = std::move(socket_path);
  m_impl->name = std::move(name);
  m_impl->config = std::move(config);
  m_impl->transport = transport;
  m_impl->interrupt_fd = interrupt_fd;
}

ServerSource::~ServerSource() = default;

NextStatus ServerSource::next(Job& out) {
  std::lock_guard lock(m_impl->client_mutex);
  return m_impl->next(out);
}

void ServerSource::report(const JobResult& result) {
  std::lock_guard lock(m_impl->client_mutex);
  m_impl->report(result);
}

void ServerSource::close() {
  std::lock_guard lock(m_impl->client_mutex);
  m_impl->close();
}

bool ServerSource::abortRunning(JobId job, const std::string& error) noexcept {
  try {
    std::lock_guard lock(m_impl->client_mutex);
    // The main thread may have reported it while we waited: failing it now would contradict
    // that report (and the server may already have handed the worker its next job).
    if (m_impl->in_hand != job) return false;
    if (!m_impl->client.connected()) return true;  // the server requeues it when it sees us gone
    // The results of the jobs before it first: held unpushed, they would be lost with us, and
    // the server would count those jobs as begun and unreported (an attempt, run again).
    if (m_impl->seg) (void)m_impl->flushHeld();
    (void)m_impl->client.send(protocol::toResultFrame(JobResult::failed(job, error), 0));
  } catch (...) {
  }
  return true;
}

}  // namespace hostq::worker

#pragma once
// The messages of the control socket and of the shared-memory rings. docs/protocol.md describes
// each one byte by byte; the order of fields in the encoder (codec.cpp) is the wire order.
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "hostq/job.hpp"
#include "hostq/job_result.hpp"
#include "hostq/worker_config.hpp"

namespace hostq::protocol {

/// Bumped on any incompatible change. The 8-byte header layout and the numbers of HelloRefused
/// and Error are frozen forever, so a peer of another version can still be told why it is refused.
/// 2: ResultAck carries the database's decision on each failure it acknowledges.
inline constexpr std::uint16_t kProtocolVersion = 4;  // 3: Reserve.max_jobs; 4: replies of several records

/// Type ids: worker → server below 0x80, server → worker from 0x80. Never renumber.
enum class MessageType : std::uint16_t {
  Hello = 0x01,
  Reserve = 0x02,
  Complete = 0x03,
  Fail = 0x04,
  Heartbeat = 0x05,
  FetchPayload = 0x06,
  StatsRequest = 0x07,
  Goodbye = 0x08,

  HelloOk = 0x81,
  HelloRefused = 0x82,
  JobAssigned = 0x83,
  Payload = 0x84,
  ResultAck = 0x85,
  Notice = 0x86,
  StatsReply = 0x87,
  Error = 0x88,
};

bool isKnownType(std::uint16_t type) noexcept;
/// True for the types a worker may send (the server drops a peer that sends anything else).
bool isWorkerToServer(MessageType type) noexcept;
const char* typeName(MessageType type) noexcept;

enum class Transport : std::uint8_t { Shm = 0, Socket = 1 };
enum class NoticeKind : std::uint8_t { Drain = 0, Stop = 1 };

// ---- worker → server ----

/// First frame on every connection. Un-acked results from a previous connection are resent
/// after HelloOk as ordinary Complete/Fail frames.
struct Hello {
  std::string name;  ///< "host:pid", becomes locked_by of the jobs this worker gets
  std::int32_t pid = 0;
  std::uint16_t protocol_version = kProtocolVersion;
  WorkerConfig config;
  Transport transport = Transport::Shm;
  bool operator==(const Hello&) const = default;
};

/// Upper bound of Reserve::max_jobs: a worker's queue of jobs it has not begun stays short (it
/// asks for 100 µs of its work at most). A reply of more jobs than one ring record holds goes in
/// several records (protocol 4).
inline constexpr std::uint16_t kMaxJobsPerReserve = 256;

/// Long poll for jobs. The server answers only with JobAssigned frames (never "nothing"): one,
/// and with `max_jobs` > 1 up to that many in all when it has more prefetched than its waiting
/// workers need (docs/server.md, "Several jobs per request").
struct Reserve {
  std::uint64_t request_seq = 0;
  std::int64_t request_mono_ns = 0;  ///< the worker's CLOCK_MONOTONIC at request time (latency stats)
  /// Jobs the worker takes at once: 1, or more over shared memory when its jobs are short.
  /// Untrusted: the server clamps it to [1, kMaxJobsPerReserve].
  std::uint16_t max_jobs = 1;
  /// Sent ahead of need (protocol 4): the worker still has jobs to run, so the time to its reply
  /// is not time a worker waits (docs/server.md, "A request ahead").
  bool ahead = false;
  bool operator==(const Reserve&) const = default;
};

struct Complete {
  JobId job_id = 0;
  std::uint64_t seq = 0;  ///< result sequence of this worker, for de-duplication of resends
  bool operator==(const Complete&) const = default;
};

struct Fail {
  JobId job_id = 0;
  std::uint64_t seq = 0;
  std::string error;
  bool count_attempt = true;
  bool permanent = false;
  std::int64_t run_at_us = 0;  ///< reschedule at (µs since epoch); 0 = the server's retry policy
  bool operator==(const Fail&) const = default;
};

struct Heartbeat {
  bool operator==(const Heartbeat&) const = default;
};

struct FetchPayload {
  JobId job_id = 0;
  bool operator==(const FetchPayload&) const = default;
};

struct StatsRequest {
  bool operator==(const StatsRequest&) const = default;
};

/// Clean close: the server stops expecting results and does not log the EOF as a death.
struct Goodbye {
  bool operator==(const Goodbye&) const = default;
};

// ---- server → worker ----

/// The segment fd rides on this frame's first byte as SCM_RIGHTS when `slot` is set.
struct HelloOk {
  std::optional<std::uint32_t> slot;  ///< none: use the socket for everything
  std::uint64_t generation = 0;       ///< server incarnation (changes on every server start)
  std::int32_t server_pid = 0;
  bool operator==(const HelloOk&) const = default;
};

struct HelloRefused {
  std::string reason;
  bool operator==(const HelloRefused&) const = default;
};

struct JobAssigned {
  JobId id = 0;
  std::string tag;
  std::string payload;
  bool payload_omitted = false;  ///< payload too big for the ring: ask with FetchPayload
  std::int32_t attempts = 0;
  std::int32_t max_attempts = 0;  ///< 0 = none
  std::int32_t priority = 0;
  std::string queue;
  std::optional<std::string> strand;
  std::optional<std::string> singleton;
  std::int64_t run_at_us = 0;
  std::int64_t created_at_us = 0;
  std::int64_t expires_at_us = 0;  ///< 0 = none
  std::string locked_by;
  std::uint64_t request_seq = 0;  ///< echoes the Reserve it answers
  bool operator==(const JobAssigned&) const = default;
};

struct Payload {
  JobId job_id = 0;
  std::string payload;
  bool operator==(const Payload&) const = default;
};

/// These results are committed; the worker may forget them. `failures`: what the fail statement
/// decided for each failure among them (retried or permanent), the decision the worker's hooks
/// follow; a failure the statement did not apply (its row no longer ours) is there as Mismatch.
struct ResultAck {
  std::vector<JobId> job_ids;
  std::vector<FailResult> failures;
  bool operator==(const ResultAck&) const = default;
};

struct Notice {
  NoticeKind kind = NoticeKind::Drain;
  std::string text;
  bool operator==(const Notice&) const = default;
};

struct StatsReply {
  std::string json;
  bool operator==(const StatsReply&) const = default;
};

/// Sent just before the server closes a connection it judged bad.
struct Error {
  std::string reason;
  bool operator==(const Error&) const = default;
};

/// Alternative order is not the wire type id; use typeOf().
using Message = std::variant<Hello, Reserve, Complete, Fail, Heartbeat, FetchPayload, StatsRequest,
                             Goodbye, HelloOk, HelloRefused, JobAssigned, Payload, ResultAck,
                             Notice, StatsReply, Error>;

MessageType typeOf(const Message& m) noexcept;

}  // namespace hostq::protocol

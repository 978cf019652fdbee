#include "protocol/codec.hpp"

#include <cstring>
#include <limits>
#include <type_traits>
#include <unordered_map>

namespace hostq::protocol {

// ---- type table ----

bool isKnownType(std::uint16_t t) noexcept {
  return (t >= 0x01 && t <= 0x08) || (t >= 0x81 && t <= 0x88);
}

bool isWorkerToServer(MessageType t) noexcept { return static_cast<std::uint16_t>(t) < 0x80; }

const char* typeName(MessageType t) noexcept {
  switch (t) {
    case MessageType::Hello: return "Hello";
    case MessageType::Reserve: return "Reserve";
    case MessageType::Complete: return "Complete";
    case MessageType::Fail: return "Fail";
    case MessageType::Heartbeat: return "Heartbeat";
    case MessageType::FetchPayload: return "FetchPayload";
    case MessageType::StatsRequest: return "StatsRequest";
    case MessageType::Goodbye: return "Goodbye";
    case MessageType::HelloOk: return "HelloOk";
    case MessageType::HelloRefused: return "HelloRefused";
    case MessageType::JobAssigned: return "JobAssigned";
    case MessageType::Payload: return "Payload";
    case MessageType::ResultAck: return "ResultAck";
    case MessageType::Notice: return "Notice";
    case MessageType::StatsReply: return "StatsReply";
    case MessageType::Error: return "Error";
  }
  return "?";
}

namespace {

template <class M>
struct TypeId;
#define HOSTQ_TYPE_ID(M) \
  template <>            \
  struct TypeId<M> {     \
    static constexpr MessageType value = MessageType::M; \
  };
HOSTQ_TYPE_ID(Hello)
HOSTQ_TYPE_ID(Reserve)
HOSTQ_TYPE_ID(Complete)
HOSTQ_TYPE_ID(Fail)
HOSTQ_TYPE_ID(Heartbeat)
HOSTQ_TYPE_ID(FetchPayload)
HOSTQ_TYPE_ID(StatsRequest)
HOSTQ_TYPE_ID(Goodbye)
HOSTQ_TYPE_ID(HelloOk)
HOSTQ_TYPE_ID(HelloRefused)
HOSTQ_TYPE_ID(JobAssigned)
HOSTQ_TYPE_ID(Payload)
HOSTQ_TYPE_ID(ResultAck)
HOSTQ_TYPE_ID(Notice)
HOSTQ_TYPE_ID(StatsReply)
HOSTQ_TYPE_ID(Error)
#undef HOSTQ_TYPE_ID

// ---- field lists: the single source of the wire order, shared by sizer, writer and reader ----
// Writers take the message by const_cast; they only read from it.

template <class Ar> void fields(Ar& ar, Hello& m) {
  ar(m.name, "name"); ar(m.pid, "pid"); ar(m.protocol_version, "protocol_version");
  ar(m.config, "config"); ar(m.transport, "transport");
}
template <class Ar> void fields(Ar& ar, Reserve& m) {
  ar(m.request_seq, "request_seq"); ar(m.request_mono_ns, "request_mono_ns"); ar(m.max_jobs, "max_jobs"); ar(m.ahead, "ahead");
}
template <class Ar> void fields(Ar& ar, Complete& m) { ar(m.job_id, "job_id"); ar(m.seq, "seq"); }
template <class Ar> void fields(Ar& ar, Fail& m) {
  ar(m.job_id, "job_id"); ar(m.seq, "seq"); ar(m.error, "error");
  ar(m.count_attempt, "count_attempt"); ar(m.permanent, "permanent"); ar(m.run_at_us, "run_at_us");
}
template <class Ar> void fields(Ar&, Heartbeat&) {}
template <class Ar> void fields(Ar& ar, FetchPayload& m) { ar(m.job_id, "job_id"); }
template <class Ar> void fields(Ar&, StatsRequest&) {}
template <class Ar> void fields(Ar&, Goodbye&) {}
template <class Ar> void fields(Ar& ar, HelloOk& m) {
  ar(m.slot, "slot"); ar(m.generation, "generation"); ar(m.server_pid, "server_pid");
}
template <class Ar> void fields(Ar& ar, HelloRefused& m) { ar(m.reason, "reason"); }
template <class Ar> void fields(Ar& ar, JobAssigned& m) {
  ar(m.id, "id"); ar(m.tag, "tag"); ar(m.payload, "payload");
  ar(m.payload_omitted, "payload_omitted"); ar(m.attempts, "attempts");
  ar(m.max_attempts, "max_attempts"); ar(m.priority, "priority"); ar(m.queue, "queue");
  ar(m.strand, "strand"); ar(m.singleton, "singleton"); ar(m.run_at_us, "run_at_us");
  ar(m.created_at_us, "created_at_us"); ar(m.expires_at_us, "expires_at_us");
  ar(m.locked_by, "locked_by"); ar(m.request_seq, "request_seq");
}
template <class Ar> void fields(Ar& ar, Payload& m) { ar(m.job_id, "job_id"); ar(m.payload, "payload"); }
template <class Ar> void fields(Ar& ar, ResultAck& m) { ar(m.job_ids, "job_ids"); ar(m.failures, "failures"); }
template <class Ar> void fields(Ar& ar, Notice& m) { ar(m.kind, "kind"); ar(m.text, "text"); }
template <class Ar> void fields(Ar& ar, StatsReply& m) { ar(m.json, "json"); }
template <class Ar> void fields(Ar& ar, Error& m) { ar(m.reason, "reason"); }

template <class E>
constexpr std::uint8_t enumMax();
template <> constexpr std::uint8_t enumMax<Transport>() { return 1; }
template <> constexpr std::uint8_t enumMax<NoticeKind>() { return 1; }
template <> constexpr std::uint8_t enumMax<FailOutcome>() { return 3; }

/// A FailResult on the wire: i64 id, u8 outcome, i32 attempts, i64 run_at_us (0 = none).
constexpr std::size_t kFailResultSize = 8 + 1 + 4 + 8;

// ---- sizer ----

struct Sizer {
  std::size_t n = 0;
  bool invalid = false;

  template <class T>
    requires std::is_integral_v<T> || std::is_enum_v<T>
  void operator()(const T&, const char*) { n += sizeof(T); }
  void operator()(const std::string& s, const char*) {
    if (s.size() > std::numeric_limits<std::uint32_t>::max()) invalid = true;
    n += 4 + s.size();
  }
  void operator()(const std::optional<std::string>& s, const char* f) {
    n += 1;
    if (s) (*this)(*s, f);
  }
  void operator()(const std::optional<std::uint32_t>& v, const char*) { n += v ? 5 : 1; }
  void operator()(const std::vector<JobId>& v, const char*) {
    if (v.size() > kMaxAckIds) invalid = true;
    n += 4 + 8 * v.size();
  }
  void operator()(const std::vector<FailResult>& v, const char*) {
    if (v.size() > kMaxAckIds) invalid = true;
    n += 4 + kFailResultSize * v.size();
  }
  void operator()(const WorkerConfig& c, const char* f) {
    (*this)(c.queue, f);
    n += 12 + 2;
    if (c.extra.size() > kMaxConfigExtras) invalid = true;
    for (const auto& [k, v] : c.extra) { (*this)(k, f); (*this)(v, f); }
  }
};

// ---- writer (bounds were checked by the sizer) ----

struct Writer {
  std::byte* p;

  template <class T>
    requires std::is_integral_v<T>
  void put(T v) {
    using U = std::make_unsigned_t<T>;
    auto u = static_cast<U>(v);
    for (std::size_t i = 0; i < sizeof(T); ++i) *p++ = static_cast<std::byte>((u >> (8 * i)) & 0xFF);
  }
  template <class T>
    requires std::is_integral_v<T>
  void operator()(const T& v, const char*) {
    if constexpr (std::is_same_v<T, bool>) put<std::uint8_t>(v ? 1 : 0);
    else put(v);
  }
  template <class T>
    requires std::is_enum_v<T>
  void operator()(const T& v, const char*) { put(static_cast<std::underlying_type_t<T>>(v)); }
  void operator()(const std::string& s, const char*) {
    put(static_cast<std::uint32_t>(s.size()));
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    p += s.size();
  }
  void operator()(const std::optional<std::string>& s, const char* f) {
    put<std::uint8_t>(s ? 1 : 0);
    if (s) (*this)(*s, f);
  }
  void operator()(const std::optional<std::uint32_t>& v, const char*) {
    put<std::uint8_t>(v ? 1 : 0);
    if (v) put(*v);
  }
  void operator()(const std::vector<JobId>& v, const char*) {
    put(static_cast<std::uint32_t>(v.size()));
    for (JobId id : v) put(id);
  }
  void operator()(const std::vector<FailResult>& v, const char*) {
    put(static_cast<std::uint32_t>(v.size()));
    for (const auto& f : v) {
      put(f.id);
      put(static_cast<std::uint8_t>(f.outcome));
      put(static_cast<std::int32_t>(f.attempts));
      put(static_cast<std::int64_t>(f.run_at ? f.run_at->time_since_epoch().count() : 0));
    }
  }
  void operator()(const WorkerConfig& c, const char* f) {
    (*this)(c.queue, f);
    put(static_cast<std::int32_t>(c.min_priority));
    put(static_cast<std::int32_t>(c.max_priority));
    put(static_cast<std::int32_t>(c.workers));
    put(static_cast<std::uint16_t>(c.extra.size()));
    for (const auto& [k, v] : c.extra) { (*this)(k, f); (*this)(v, f); }
  }
};

// ---- reader: the first error sticks and turns every later read into a no-op ----

struct Reader {
  const std::byte* base;
  std::size_t pos;
  std::size_t end;
  std::optional<DecodeError> err;
  std::size_t origin = 0;  // where `base` sits in the frame, so errors carry frame offsets

  bool fail(DecodeErrc c, const char* f) {
    if (!err) err = DecodeError{c, f, origin + pos};
    return false;
  }
  bool need(std::size_t n, const char* f) {
    if (err) return false;
    if (end - pos < n) return fail(DecodeErrc::OutOfBounds, f);
    return true;
  }
  template <class T>
  T get() {
    using U = std::make_unsigned_t<T>;
    U u = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i)
      u |= static_cast<U>(static_cast<U>(std::to_integer<std::uint8_t>(base[pos + i])) << (8 * i));
    pos += sizeof(T);
    return static_cast<T>(u);
  }

  template <class T>
    requires std::is_integral_v<T>
  void operator()(T& v, const char* f) {
    if constexpr (std::is_same_v<T, bool>) {
      if (!need(1, f)) return;
      auto b = get<std::uint8_t>();
      if (b > 1) { pos -= 1; fail(DecodeErrc::BadBool, f); return; }
      v = b == 1;
    } else {
      if (need(sizeof(T), f)) v = get<T>();
    }
  }
  template <class T>
    requires std::is_enum_v<T>
  void operator()(T& v, const char* f) {
    if (!need(1, f)) return;
    auto b = get<std::uint8_t>();
    if (b > enumMax<T>()) { pos -= 1; fail(DecodeErrc::BadEnum, f); return; }
    v = static_cast<T>(b);
  }
  void operator()(std::string& s, const char* f) {
    if (!need(4, f)) return;
    auto len = get<std::uint32_t>();
    if (end - pos < len) { pos -= 4; fail(DecodeErrc::OutOfBounds, f); return; }
    s.assign(reinterpret_cast<const char*>(base + pos), len);
    pos += len;
  }
  bool present(const char* f) {
    bool b = false;
    (*this)(b, f);
    return !err && b;
  }
  void operator()(std::optional<std::string>& s, const char* f) {
    if (!present(f)) {
      s.reset();
      return;
    }
    if (!s) s.emplace();  // an engaged one keeps its buffer (decodeInto)
    (*this)(*s, f);
  }
  void operator()(std::optional<std::uint32_t>& v, const char* f) {
    v.reset();
    if (present(f) && need(4, f)) v = get<std::uint32_t>();
  }
  void operator()(std::vector<JobId>& v, const char* f) {
    if (!need(4, f)) return;
    auto count = get<std::uint32_t>();
    if (count > kMaxAckIds) { pos -= 4; fail(DecodeErrc::TooMany, f); return; }
    if ((end - pos) / 8 < count) { pos -= 4; fail(DecodeErrc::OutOfBounds, f); return; }
    v.clear();
    v.reserve(count);
    for (std::uint32_t i = 0; i < count; ++i) v.push_back(get<JobId>());
  }
  void operator()(std::vector<FailResult>& v, const char* f) {
    if (!need(4, f)) return;
    auto count = get<std::uint32_t>();
    if (count > kMaxAckIds) { pos -= 4; fail(DecodeErrc::TooMany, f); return; }
    if ((end - pos) / kFailResultSize < count) { pos -= 4; fail(DecodeErrc::OutOfBounds, f); return; }
    v.clear();
    v.reserve(count);
    for (std::uint32_t i = 0; i < count && !err; ++i) {
      FailResult r;
      r.id = get<JobId>();
      (*this)(r.outcome, "failures.outcome");
      std::int32_t attempts = 0;
      (*this)(attempts, "failures.attempts");
      r.attempts = attempts;
      std::int64_t at = 0;
      (*this)(at, "failures.run_at_us");
      if (at != 0) r.run_at = TimePoint{std::chrono::microseconds{at}};
      v.push_back(r);
    }
  }
  void operator()(WorkerConfig& c, const char*) {
    (*this)(c.queue, "config.queue");
    std::int32_t i = 0;
    (*this)(i, "config.min_priority"); c.min_priority = i;
    (*this)(i, "config.max_priority"); c.max_priority = i;
    (*this)(i, "config.workers"); c.workers = i;
    std::uint16_t count = 0;
    (*this)(count, "config.extra");
    if (err) return;
    if (count > kMaxConfigExtras) { pos -= 2; fail(DecodeErrc::TooMany, "config.extra"); return; }
    c.extra.clear();
    for (std::uint16_t k = 0; k < count && !err; ++k) {
      std::string key, value;
      (*this)(key, "config.extra.key");
      (*this)(value, "config.extra.value");
      if (err) return;
      // Strictly increasing keys (std::map order) keep the encoding canonical: one config has
      // exactly one byte form, and duplicates are refused by the same check.
      if (!c.extra.empty() && !(c.extra.rbegin()->first < key)) {
        fail(DecodeErrc::UnsortedKeys, "config.extra.key");
        return;
      }
      c.extra.emplace_hint(c.extra.end(), std::move(key), std::move(value));
    }
  }
};

std::size_t bodySize(const Message& m, bool* invalid) {
  Sizer s;
  std::visit([&](const auto& msg) { fields(s, const_cast<std::remove_cvref_t<decltype(msg)>&>(msg)); }, m);
  if (invalid) *invalid = s.invalid || s.n > std::numeric_limits<std::uint32_t>::max();
  return s.n;
}

template <class M>
Result<Message, DecodeError> decodeAs(std::span<const std::byte> body) {
  M msg{};
  Reader r{body.data(), 0, body.size(), std::nullopt, kHeaderSize};
  fields(r, msg);
  if (r.err) return Err{*r.err};
  if (r.pos != r.end) return Err{DecodeError{DecodeErrc::TrailingBytes, "body", kHeaderSize + r.pos}};
  return Message{std::move(msg)};
}

template <class M>
std::optional<DecodeError> decodeInPlace(std::span<const std::byte> body, Message& reuse) {
  M* msg = std::get_if<M>(&reuse);
  if (!msg) msg = &reuse.emplace<M>();
  Reader r{body.data(), 0, body.size(), std::nullopt, kHeaderSize};
  fields(r, *msg);
  if (r.err) return *r.err;
  if (r.pos != r.end) return DecodeError{DecodeErrc::TrailingBytes, "body", kHeaderSize + r.pos};
  return std::nullopt;
}

}  // namespace

MessageType typeOf(const Message& m) noexcept {
  return std::visit([](const auto& msg) { return TypeId<std::remove_cvref_t<decltype(msg)>>::value; }, m);
}

const char* errcName(DecodeErrc c) noexcept {
  switch (c) {
    case DecodeErrc::Truncated: return "truncated frame";
    case DecodeErrc::FrameTooLarge: return "frame too large";
    case DecodeErrc::UnknownType: return "unknown message type";
    case DecodeErrc::BadVersion: return "unsupported protocol version";
    case DecodeErrc::OutOfBounds: return "length points outside the body";
    case DecodeErrc::BadEnum: return "enum value out of range";
    case DecodeErrc::BadBool: return "bool/presence byte not 0 or 1";
    case DecodeErrc::TooMany: return "count above bound";
    case DecodeErrc::UnsortedKeys: return "keys not strictly increasing";
    case DecodeErrc::TrailingBytes: return "trailing bytes";
  }
  return "?";
}

std::string DecodeError::describe() const {
  std::string s = errcName(code);
  if (field && *field) { s += " in "; s += field; }
  s += " at offset ";
  s += std::to_string(offset);
  return s;
}

Result<FrameHeader, DecodeError> decodeHeader(std::span<const std::byte> bytes,
                                              const Limits& limits) noexcept {
  if (bytes.size() < kHeaderSize) return Err{DecodeError{DecodeErrc::Truncated, "header", bytes.size()}};
  Reader r{bytes.data(), 0, kHeaderSize, std::nullopt, 0};
  FrameHeader h;
  h.body_length = r.get<std::uint32_t>();
  h.type = r.get<std::uint16_t>();
  h.version = r.get<std::uint16_t>();
  // Size first: it is what guards allocation, and it holds whatever the type or version.
  if (limits.max_frame_size < kHeaderSize || h.body_length > limits.max_frame_size - kHeaderSize)
    return Err{DecodeError{DecodeErrc::FrameTooLarge, "body_length", 0}};
  if (!isKnownType(h.type)) return Err{DecodeError{DecodeErrc::UnknownType, "type", 4}};
  if (h.version != kProtocolVersion) return Err{DecodeError{DecodeErrc::BadVersion, "version", 6}};
  return h;
}

Result<Message, DecodeError> decodeBody(const FrameHeader& h, std::span<const std::byte> body) {
  if (body.size() < h.body_length) return Err{DecodeError{DecodeErrc::Truncated, "body", kHeaderSize + body.size()}};
  if (body.size() > h.body_length)
    return Err{DecodeError{DecodeErrc::TrailingBytes, "frame", kHeaderSize + h.body_length}};
  switch (static_cast<MessageType>(h.type)) {
    case MessageType::Hello: return decodeAs<Hello>(body);
    case MessageType::Reserve: return decodeAs<Reserve>(body);
    case MessageType::Complete: return decodeAs<Complete>(body);
    case MessageType::Fail: return decodeAs<Fail>(body);
    case MessageType::Heartbeat: return decodeAs<Heartbeat>(body);
    case MessageType::FetchPayload: return decodeAs<FetchPayload>(body);
    case MessageType::StatsRequest: return decodeAs<StatsRequest>(body);
    case MessageType::Goodbye: return decodeAs<Goodbye>(body);
    case MessageType::HelloOk: return decodeAs<HelloOk>(body);
    case MessageType::HelloRefused: return decodeAs<HelloRefused>(body);
    case MessageType::JobAssigned: return decodeAs<JobAssigned>(body);
    case MessageType::Payload: return decodeAs<Payload>(body);
    case MessageType::ResultAck: return decodeAs<ResultAck>(body);
    case MessageType::Notice: return decodeAs<Notice>(body);
    case MessageType::StatsReply: return decodeAs<StatsReply>(body);
    case MessageType::Error: return decodeAs<Error>(body);
  }
  return Err{DecodeError{DecodeErrc::UnknownType, "type", 4}};
}

Result<Message, DecodeError> decode(std::span<const std::byte> frame, const Limits& limits) {
  auto h = decodeHeader(frame, limits);
  if (!h) return Err{h.error()};
  if (frame.size() < h->frameSize()) return Err{DecodeError{DecodeErrc::Truncated, "body", frame.size()}};
  if (frame.size() > h->frameSize()) return Err{DecodeError{DecodeErrc::TrailingBytes, "frame", h->frameSize()}};
  return decodeBody(*h, frame.subspan(kHeaderSize));
}

std::optional<DecodeError> decodeInto(std::span<const std::byte> frame, Message& reuse,
                                      const Limits& limits) {
  auto h = decodeHeader(frame, limits);
  if (!h) return h.error();
  if (frame.size() < h->frameSize()) return DecodeError{DecodeErrc::Truncated, "body", frame.size()};
  if (frame.size() > h->frameSize()) return DecodeError{DecodeErrc::TrailingBytes, "frame", h->frameSize()};
  const auto body = frame.subspan(kHeaderSize);
  // The two a worker receives per job decode in place; the rest are rare enough to build anew.
  switch (static_cast<MessageType>(h->type)) {
    case MessageType::JobAssigned: return decodeInPlace<JobAssigned>(body, reuse);
    case MessageType::ResultAck: return decodeInPlace<ResultAck>(body, reuse);
    default: break;
  }
  auto m = decodeBody(*h, body);
  if (!m) return m.error();
  reuse = std::move(m).value();
  return std::nullopt;
}

Result<std::span<const std::byte>, DecodeError> nextFrame(std::span<const std::byte>& rest,
                                                          const Limits& limits) noexcept {
  auto h = decodeHeader(rest, limits);
  if (!h) return Err{h.error()};
  if (rest.size() < h->frameSize()) return Err{DecodeError{DecodeErrc::Truncated, "body", rest.size()}};
  const auto frame = rest.first(h->frameSize());
  rest = rest.subspan(h->frameSize());
  return frame;
}

std::size_t encodedSize(const Message& m) noexcept { return kHeaderSize + bodySize(m, nullptr); }

Result<std::size_t, EncodeErrc> encodeInto(const Message& m, std::span<std::byte> out) noexcept {
  bool invalid = false;
  std::size_t body = bodySize(m, &invalid);
  if (invalid) return Err{EncodeErrc::Invalid};
  if (out.size() < kHeaderSize + body) return Err{EncodeErrc::BufferTooSmall};
  Writer w{out.data()};
  w.put(static_cast<std::uint32_t>(body));
  w.put(static_cast<std::uint16_t>(typeOf(m)));
  w.put(kProtocolVersion);
  std::visit([&](const auto& msg) { fields(w, const_cast<std::remove_cvref_t<decltype(msg)>&>(msg)); }, m);
  return kHeaderSize + body;
}

Result<std::vector<std::byte>, EncodeErrc> encode(const Message& m) {
  bool invalid = false;
  std::size_t body = bodySize(m, &invalid);
  if (invalid) return Err{EncodeErrc::Invalid};
  std::vector<std::byte> out(kHeaderSize + body);
  auto n = encodeInto(m, out);
  if (!n) return Err{n.error()};
  return out;
}

std::vector<ResultAck> chunkAck(const std::vector<JobId>& jobs, const std::vector<FailResult>& failures,
                                std::size_t max_frame) {
  std::unordered_map<JobId, const FailResult*> decided;
  for (const auto& f : failures) decided.emplace(f.id, &f);
  constexpr std::size_t kEmpty = kHeaderSize + 4 + 4;  // two counts
  std::vector<ResultAck> out;
  std::size_t size = max_frame;  // "full": the first id opens an ack
  for (JobId id : jobs) {
    const auto it = decided.find(id);
    const std::size_t need = 8 + (it != decided.end() ? kFailResultSize : 0);
    if (size + need > max_frame) {
      out.emplace_back();
      size = kEmpty;
    }
    out.back().job_ids.push_back(id);
    if (it != decided.end()) out.back().failures.push_back(*it->second);
    size += need;
  }
  return out;
}

}  // namespace hostq::protocol

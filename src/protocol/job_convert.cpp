#include "protocol/job_convert.hpp"

#include "protocol/codec.hpp"

namespace hostq::protocol {

namespace {
std::int64_t micros(const TimePoint& t) { return t.time_since_epoch().count(); }
TimePoint fromMicros(std::int64_t us) { return TimePoint{std::chrono::microseconds{us}}; }
}  // namespace

void assignJobAssigned(const Job& job, std::uint64_t request_seq, JobAssigned& a) {
  a.id = job.id;
  a.tag = job.tag;
  a.payload = job.payload;
  a.payload_omitted = false;
  a.attempts = job.attempts;
  a.max_attempts = job.max_attempts.value_or(0);
  a.priority = job.priority;
  a.queue = job.queue;
  a.strand = job.strand;
  a.singleton = job.singleton;
  a.run_at_us = micros(job.run_at);
  a.created_at_us = micros(job.created_at);
  a.expires_at_us = job.expires_at ? micros(*job.expires_at) : 0;
  if (job.locked_by) a.locked_by = *job.locked_by;
  else a.locked_by.clear();
  a.request_seq = request_seq;
}

std::size_t jobAssignedFrameSize(const Job& job, std::string_view locked_by) noexcept {
  // The field list of JobAssigned (codec.cpp): strings are u32 length + bytes, optional strings
  // a presence byte first; integers at their width; bools one byte.
  auto str = [](std::size_t n) { return 4 + n; };
  auto opt = [&](const std::optional<std::string>& s) { return 1 + (s ? str(s->size()) : 0); };
  return kHeaderSize + 8 + str(job.tag.size()) + str(job.payload.size()) + 1 + 4 + 4 + 4 +
         str(job.queue.size()) + opt(job.strand) + opt(job.singleton) + 8 + 8 + 8 +
         str(locked_by.size()) + 8;
}

void assignJob(const JobAssigned& a, Job& j) {
  j.id = a.id;
  j.priority = a.priority;
  j.attempts = a.attempts;
  j.tag = a.tag;
  j.payload = a.payload;
  j.last_error.reset();
  j.queue = a.queue;
  j.run_at = fromMicros(a.run_at_us);
  j.locked_at.reset();
  j.failed_at.reset();
  if (!j.locked_by) j.locked_by.emplace();
  *j.locked_by = a.locked_by;
  j.created_at = fromMicros(a.created_at_us);
  j.updated_at = TimePoint{};
  j.max_attempts = a.max_attempts > 0 ? std::optional<int>(a.max_attempts) : std::nullopt;
  j.strand = a.strand;
  j.next_in_strand = true;
  j.source.reset();
  j.max_concurrent = 1;
  j.expires_at = a.expires_at_us != 0 ? std::optional<TimePoint>(fromMicros(a.expires_at_us)) : std::nullopt;
  j.strand_order_override = 0;
  j.singleton = a.singleton;
  j.original_job_id.reset();
  j.requeued_job_id.reset();
}

Message toResultFrame(const JobResult& r, std::uint64_t seq) {
  if (r.success) return Complete{r.id, seq};
  Fail f;
  f.job_id = r.id;
  f.seq = seq;
  f.error = r.error;
  f.count_attempt = r.count_attempt;
  f.permanent = r.permanent;
  f.run_at_us = r.run_at ? micros(*r.run_at) : 0;
  return f;
}

std::optional<JobResult> toJobResult(const Message& frame) {
  if (const auto* c = std::get_if<Complete>(&frame)) return JobResult::completed(c->job_id);
  const auto* f = std::get_if<Fail>(&frame);
  if (f == nullptr) return std::nullopt;
  JobResult r = JobResult::failed(f->job_id, f->error);
  r.count_attempt = f->count_attempt;
  r.permanent = f->permanent;
  if (f->run_at_us != 0) r.run_at = fromMicros(f->run_at_us);
  return r;
}

}  // namespace hostq::protocol

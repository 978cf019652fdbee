// hostq::Client on the store: the hot-path Store for enqueue, find, requeue and the migration,
// the AdminStore for selections. Each is connected on first use, so a client that only lists
// never opens the other connection.
#include "hostq/client.hpp"

#include <optional>
#include <stdexcept>
#include <utility>

#include "store/admin_store.hpp"
#include "store/quote_ident.hpp"
#include "store/job_validation.hpp"
#include "store/store.hpp"

namespace hostq {
namespace {

using store::quoteIdent;

void requireLimit(int limit) {
  if (limit < 1) throw ValidationError("limit must be at least 1 (got " + std::to_string(limit) + ")");
}

// Selection writes with nothing selected would touch every job; no caller means that.
void requireSelection(const JobSelector& selector, const char* what) {
  if (selector.empty()) throw ValidationError(std::string(what) + " needs ids, a tag, a strand or a queue");
}

}  // namespace

struct Client::Impl {
  explicit Impl(ClientOptions o) : options(std::move(o)) {
    if (options.default_max_attempts < 1) {
      throw ValidationError("default_max_attempts must be at least 1 (got " +
                            std::to_string(options.default_max_attempts) + ")");
    }
    if (options.reconnect_attempts < 0) {
      throw ValidationError("reconnect_attempts must not be negative (got " +
                            std::to_string(options.reconnect_attempts) + ")");
    }
  }

  StoreOptions storeOptions() const {
    StoreOptions so;
    so.schema = options.schema;
    so.application_name = options.application_name;
    so.default_max_attempts = options.default_max_attempts;
    so.reconnect_attempts = options.reconnect_attempts;
    return so;
  }
  Store& jobs() {
    if (!m_store) m_store = Store::connect(options.database_url, storeOptions());
    return *m_store;
  }
  store::AdminStore& admin() {
    if (!m_admin) m_admin.emplace(options.database_url, storeOptions());
    return *m_admin;
  }

  ClientOptions options;

 private:
  std::unique_ptr<Store> m_store;
  std::optional<store::AdminStore> m_admin;
};

Client::Client(ClientOptions options) : m_impl(std::make_unique<Impl>(std::move(options))) {}
Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

Client::Impl& Client::impl() {
  if (!m_impl) throw std::logic_error("hostq::Client used after it was moved from");
  return *m_impl;
}

int Client::migrate() {
  auto& i = impl();
  auto& store = i.jobs();
  // search_path naming a schema that does not exist yet is legal, and CREATE TABLE would then
  // have nowhere to go: create it, so a fresh database with a schema option works.
  if (!i.options.schema.empty()) {
    // IF NOT EXISTS would otherwise print a NOTICE on every run after the first.
    store.exec("SET client_min_messages = warning");
    store.exec("CREATE SCHEMA IF NOT EXISTS " + quoteIdent(i.options.schema));
  }
  return store.migrate();
}

int Client::schemaVersion() { return impl().jobs().schemaVersion(); }

int Client::latestSchemaVersion() { return Store::latestSchemaVersion(); }

Enqueued Client::enqueue(const NewJob& job) {
  store::validateNewJob(job);
  return impl().jobs().enqueue(job);
}

std::vector<Enqueued> Client::enqueueMany(std::span<const NewJob> jobs) {
  for (const auto& j : jobs) store::validateNewJob(j);
  return impl().jobs().enqueueMany(jobs);
}

std::size_t Client::enqueueBulk(std::span<const NewJob> jobs) {
  for (const auto& j : jobs) store::validateNewJob(j);
  return impl().jobs().enqueueBulk(jobs);
}

std::vector<JobId> Client::enqueueCopies(const NewJob& job, std::int64_t count) {
  store::validateNewJob(job);
  if (count < 1) throw ValidationError("count must be at least 1 (got " + std::to_string(count) + ")");
  return impl().admin().enqueueCopies(job, count);
}

std::optional<Job> Client::find(JobId id) { return impl().jobs().find(id); }

std::optional<Job> Client::findFailed(JobId id) { return impl().jobs().findFailed(id); }

std::vector<ListedJob> Client::list(const JobSelector& selector, std::optional<JobState> state, int limit) {
  requireLimit(limit);
  std::vector<ListedJob> out;
  for (auto& [job, st] : impl().admin().list(selector, state, limit)) out.push_back({std::move(job), st});
  return out;
}

std::vector<Job> Client::listFailed(const JobSelector& selector, int limit) {
  requireLimit(limit);
  return impl().admin().listFailed(selector, limit);
}

std::vector<GroupCount> Client::counts(CountBy by, const JobSelector& selector) {
  return impl().admin().counts(by, selector);
}

int Client::hold(const JobSelector& selector) {
  requireSelection(selector, "hold");
  return impl().admin().hold(selector);
}

int Client::unhold(const JobSelector& selector) {
  requireSelection(selector, "unhold");
  return impl().admin().unhold(selector);
}

JobId Client::requeue(JobId id) {
  auto& store = impl().jobs();
  const auto failed = store.findFailed(id);
  if (!failed) throw ValidationError("no failed job with id " + std::to_string(id));
  return store.requeueFailed(failed->id);
}

int Client::destroy(const JobSelector& selector) {
  requireSelection(selector, "destroy");
  return impl().admin().destroy(selector, false);
}

int Client::destroyFailed(const JobSelector& selector) {
  requireSelection(selector, "destroyFailed");
  return impl().admin().destroy(selector, true);
}

std::int64_t Client::cleanupFailed(std::chrono::seconds older_than) {
  if (older_than.count() < 0) throw ValidationError("older_than must not be negative");
  return impl().admin().cleanupFailed(older_than);
}

}  // namespace hostq

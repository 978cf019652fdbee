#include "http/http_server.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <array>
#include <deque>
#include <future>
#include <optional>
#include <unordered_map>

#include "http/dashboard_page.hpp"
#include "http/metrics.hpp"

namespace hostq::http {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<bhttp::string_body>;

/// The jobs/s chart covers this many one-second samples.
constexpr std::size_t kHistorySamples = 600;

class Session;

}  // namespace

struct HttpServer::Shared : std::enable_shared_from_this<Shared> {
  Shared(asio::io_context& io_, HttpOptions o, const server::StatsBoard& b)
      : io(io_),
        opt(std::move(o)),
        board(b),
        acceptor(io_),
        acceptRetry(io_),
        sampler(io_),
        probe(DbProbe::Options{opt.database_url, opt.schema, opt.ping_interval, opt.counts_interval}) {}

  asio::io_context& io;
  HttpOptions opt;
  const server::StatsBoard& board;
  tcp::acceptor acceptor;
  asio::steady_timer acceptRetry;
  asio::steady_timer sampler;
  DbProbe probe;
  std::string address;
  bool started = false;  ///< caller's thread
  bool stopping = false; ///< caller's thread
  // io thread only:
  bool stopped = false;
  std::deque<Sample> history;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;

  void bind();
  void accept();
  void sample();
  void refuseBusy(tcp::socket& socket);
  Response handle(const Request& req);
};

namespace {

Response makeResponse(bhttp::status status, unsigned version, std::string_view content_type, std::string body) {
  Response res{status, version};
  res.set(bhttp::field::server, "hostq");
  res.set(bhttp::field::content_type, beast::string_view(content_type.data(), content_type.size()));
  res.set(bhttp::field::cache_control, "no-store");
  res.set("X-Content-Type-Options", "nosniff");
  res.body() = std::move(body);
  return res;
}

Response textResponse(bhttp::status status, unsigned version, std::string body) {
  return makeResponse(status, version, "text/plain; charset=utf-8", std::move(body));
}

const beast::error_category& httpParseErrors() { return bhttp::make_error_code(bhttp::error::bad_method).category(); }

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<HttpServer::Shared> shared)
      : m_stream(std::move(socket)),
        // Room for a whole request at the limits (and the start of a pipelined next one); the
        // parser refuses anything larger with 431 or 413 before the buffer is full.
        m_buffer(bufferLimit(*shared)),
        m_shared(std::move(shared)) {}
  ~Session() { m_shared->sessions.erase(this); }

  void start() { readRequest(); }

  void close() {
    beast::error_code ec;
    m_stream.socket().shutdown(tcp::socket::shutdown_both, ec);
    m_stream.close();
  }

 private:
  void readRequest() {
    m_parser.emplace();
    m_parser->header_limit(static_cast<std::uint32_t>(m_shared->opt.max_header_bytes));
    m_parser->body_limit(m_shared->opt.max_body_bytes);
    m_stream.expires_after(m_shared->opt.request_timeout);
    bhttp::async_read(m_stream, m_buffer, *m_parser,
                      [self = shared_from_this()](beast::error_code ec, std::size_t) { self->onRead(ec); });
  }

  void onRead(beast::error_code ec) {
    if (m_shared->stopped) return;
    if (!ec) {
      const Request& req = m_parser->get();
      Response res = m_shared->handle(req);
      res.keep_alive(req.keep_alive());
      return send(std::move(res), req.method() == bhttp::verb::head);
    }
    // Timed out, went away, or stopped mid-request: nothing to answer.
    if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message || ec == beast::error::timeout ||
        ec.category() != httpParseErrors())
      return close();
    if (ec == bhttp::error::header_limit)
      return refuse(bhttp::status::request_header_fields_too_large, "request line and headers too large\n");
    if (ec == bhttp::error::body_limit) return refuse(bhttp::status::payload_too_large, "request body too large\n");
    refuse(bhttp::status::bad_request, "malformed request: " + ec.message() + "\n");
  }

  /// An answer after which the connection closes (what is left of the request is unreadable).
  void refuse(bhttp::status status, std::string why) {
    Response res = textResponse(status, 11, std::move(why));
    res.keep_alive(false);
    m_linger = true;
    send(std::move(res), false);
  }

  /// After a refusal the client may still be sending: closing now would reset the connection
  /// and could destroy our answer in its receive buffer. Stop sending, read and drop what comes
  /// (bounded in bytes and time), then close.
  void lingerThenClose() {
    beast::error_code ec;
    m_stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    m_stream.expires_after(std::chrono::seconds(2));
    drain();
  }
  void drain() {
    m_stream.async_read_some(asio::buffer(m_discard),
                             [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                               self->m_drained += n;
                               if (ec || self->m_shared->stopped || self->m_drained > kLingerBytes)
                                 return self->close();
                               self->drain();
                             });
  }

  void send(Response res, bool head) {
    res.prepare_payload();
    if (head) {
      const auto length = res.body().size();
      res.body().clear();
      res.content_length(length);
    }
    m_res = std::move(res);
    m_stream.expires_after(m_shared->opt.request_timeout);
    bhttp::async_write(m_stream, m_res, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (!ec && self->m_linger && !self->m_shared->stopped) return self->lingerThenClose();
      if (ec || self->m_shared->stopped || !self->m_res.keep_alive()) return self->close();
      self->readRequest();
    });
  }

  beast::tcp_stream m_stream;
  static std::size_t bufferLimit(const HttpServer::Shared& s) {
    return s.opt.max_header_bytes + s.opt.max_body_bytes + 4096;
  }

  beast::flat_buffer m_buffer;
  std::optional<bhttp::request_parser<bhttp::string_body>> m_parser;
  Response m_res;
  static constexpr std::size_t kLingerBytes = 1 << 20;
  bool m_linger = false;
  std::size_t m_drained = 0;
  std::array<char, 4096> m_discard{};
  std::shared_ptr<HttpServer::Shared> m_shared;
};

}  // namespace

void HttpServer::Shared::bind() {
  boost::system::error_code ec;
  tcp::resolver resolver(io);
  const auto results = resolver.resolve(opt.listen.host, std::to_string(opt.listen.port),
                                        tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty())
    throw HttpSetupError("http: cannot resolve " + opt.listen.host + ": " + (ec ? ec.message() : "no address"));
  const tcp::endpoint ep = results.begin()->endpoint();
  acceptor.open(ep.protocol(), ec);
  if (!ec) ::fcntl(acceptor.native_handle(), F_SETFD, FD_CLOEXEC);  // not into idle-hook children
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(ep, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw HttpSetupError("http: cannot listen on " + opt.listen.host + ":" + std::to_string(opt.listen.port) +
                               ": " + ec.message());
  const auto local = acceptor.local_endpoint();
  const std::string host = local.address().to_string();
  address = (local.address().is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(local.port());
}

void HttpServer::Shared::accept() {
  acceptor.async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket socket) {
    if (self->stopped) return;
    if (ec) {
      // Out of descriptors and the like: wait a little instead of spinning on the error.
      spdlog::warn("http: accept: {}", ec.message());
      self->acceptRetry.expires_after(std::chrono::milliseconds(100));
      self->acceptRetry.async_wait([self](beast::error_code e) {
        if (!e && !self->stopped) self->accept();
      });
      return;
    }
    if (self->sessions.size() >= self->opt.max_connections) {
      self->refuseBusy(socket);
    } else {
      auto session = std::make_shared<Session>(std::move(socket), self);
      self->sessions.emplace(session.get(), session);
      session->start();
    }
    self->accept();
  });
}

void HttpServer::Shared::refuseBusy(tcp::socket& socket) {
  // One non-blocking try: a client that does not read this is closed all the same.
  static constexpr std::string_view kBusy =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 21\r\n"
      "Connection: close\r\n\r\ntoo many connections\n";
  boost::system::error_code ec;
  socket.non_blocking(true, ec);
  socket.write_some(asio::buffer(kBusy.data(), kBusy.size()), ec);
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

void HttpServer::Shared::sample() {
  if (stopped) return;
  if (auto snap = board.latest()) {
    // Stamped with the snapshot's own time (up to 250 ms before now), so rates don't jitter.
    const auto age = std::chrono::steady_clock::now() - snap->taken_at;
    const auto unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             (std::chrono::system_clock::now() - age).time_since_epoch())
                             .count();
    history.push_back(Sample{unix_ms, snap->stats.jobs_completed, snap->stats.jobs_failed});
    if (history.size() > kHistorySamples) history.pop_front();
  }
  sampler.expires_after(std::chrono::seconds(1));
  sampler.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (!ec) self->sample();
  });
}

Response HttpServer::Shared::handle(const Request& req) {
  const auto version = req.version();
  const std::string_view target(req.target().data(), req.target().size());
  const std::string_view path = target.substr(0, target.find('?'));
  enum class Route { Page, Metrics, Health, Stats, Dashboard };
  static const std::pair<std::string_view, Route> kRoutes[] = {{"/", Route::Page},
                                                               {"/metrics", Route::Metrics},
                                                               {"/healthz", Route::Health},
                                                               {"/api/stats", Route::Stats},
                                                               {"/api/dashboard", Route::Dashboard}};
  const auto* route = std::find_if(std::begin(kRoutes), std::end(kRoutes), [&](const auto& r) { return r.first == path; });
  if (route == std::end(kRoutes)) return textResponse(bhttp::status::not_found, version, "not found\n");
  if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head) {
    Response res = textResponse(bhttp::status::method_not_allowed, version, "only GET and HEAD\n");
    res.set(bhttp::field::allow, "GET, HEAD");
    return res;
  }
  const auto snapshot = board.latest();
  const auto now = std::chrono::steady_clock::now();
  switch (route->second) {
    case Route::Page: {
      Response res = makeResponse(bhttp::status::ok, version, "text/html; charset=utf-8", std::string(dashboardPage()));
      // Everything is inline; nothing may be fetched from elsewhere.
      res.set("Content-Security-Policy",
              "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
              "img-src data:");
      return res;
    }
    case Route::Metrics:
      return makeResponse(bhttp::status::ok, version, "text/plain; version=0.0.4; charset=utf-8",
                          renderMetrics(snapshot.get(), probe.state(), now));
    case Route::Health: {
      const Health h = evaluateHealth(snapshot.get(), probe.state(), now, opt.stale_after);
      return textResponse(h.ok ? bhttp::status::ok : bhttp::status::service_unavailable, version,
                          (h.ok ? "ok" : "unavailable: " + h.reason) + "\n");
    }
    case Route::Stats:
      if (!snapshot)
        return makeResponse(bhttp::status::service_unavailable, version, "application/json",
                            dumpJson(Json{{"error", "server starting: no stats published yet"}}) + "\n");
      return makeResponse(bhttp::status::ok, version, "application/json", dumpJson(server::statsJson(*snapshot)) + "\n");
    case Route::Dashboard: {
      const auto db = probe.state();
      const Health h = evaluateHealth(snapshot.get(), db, now, opt.stale_after);
      return makeResponse(bhttp::status::ok, version, "application/json",
                          dumpJson(dashboardJson(snapshot.get(), db, h, history, now)) + "\n");
    }
  }
  return textResponse(bhttp::status::not_found, version, "not found\n");
}

HttpServer::HttpServer(asio::io_context& io, HttpOptions options, const server::StatsBoard& board)
    : m_shared(std::make_shared<Shared>(io, std::move(options), board)) {
  m_shared->bind();
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start() {
  if (m_shared->started || m_shared->stopping) return;
  m_shared->started = true;
  m_shared->probe.start();
  asio::post(m_shared->io, [self = m_shared] {
    self->accept();
    self->sample();
  });
  spdlog::info("http: serving on {}", m_shared->address);
}

void HttpServer::stop() {
  if (!m_shared || m_shared->stopping) return;
  m_shared->stopping = true;
  if (m_shared->started) {
    auto done = std::make_shared<std::promise<void>>();
    auto finished = done->get_future();
    asio::post(m_shared->io, [self = m_shared, done] {
      self->stopped = true;
      boost::system::error_code ec;
      self->acceptor.close(ec);
      self->acceptRetry.cancel();
      self->sampler.cancel();
      std::vector<std::shared_ptr<Session>> open;
      for (auto& [raw, weak] : self->sessions)
        if (auto s = weak.lock()) open.push_back(std::move(s));
      for (auto& s : open) s->close();
      done->set_value();
    });
    if (finished.wait_for(std::chrono::seconds(5)) != std::future_status::ready)
      spdlog::warn("http: the io thread did not close the endpoint in time");
  } else {
    boost::system::error_code ec;
    m_shared->acceptor.close(ec);
  }
  m_shared->probe.stop();
}

const std::string& HttpServer::address() const noexcept { return m_shared->address; }

}  // namespace hostq::http

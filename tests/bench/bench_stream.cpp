// The live stream's benchmark client, run by scripts/bench-stream (not a test). Two modes:
//
//   b24es-bench-stream latency INGEST_URL QUERY_URL BODY_FILE STREAMS RATE SECONDS
//     opens STREAMS streams (each from the newest event on), waits for every head, then POSTs
//     BODY_FILE at RATE events per second for SECONDS from 32 keep-alive connections (each
//     event due at its own time, so a slow answer does not slow the schedule), and reads every
//     stream on one epoll thread. For each message it takes the event's received_at, which the
//     writer stamps inside the batch's transaction just before COMMIT, and the client's clock
//     when the message's last byte arrived: latency from insert to client, an upper bound on
//     commit to client (it includes the commit itself). Prints one line:
//     "streams rate posted expected received p50_ms p99_ms max_ms".
//   b24es-bench-stream tail QUERY_URL STREAMS SECONDS [QUERY]
//     opens STREAMS streams (with ?QUERY, e.g. member_id=nobody) and reads them for SECONDS,
//     discarding what comes; prints "streams messages".
//
// Loopback only (the URLs are the store's, started by the script); every loop ends by its count
// or its deadline.
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using Wall = std::chrono::system_clock;
using Steady = std::chrono::steady_clock;

double wallMillis() {
  return std::chrono::duration<double, std::milli>(Wall::now().time_since_epoch()).count();
}

// "2026-12-02T00:33:00.123Z" -> unix milliseconds; -1 when it is not that.
double isoMillis(const char* s) {
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7) {
    return -1;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<double>(::timegm(&tm)) * 1000.0 + ms;
}

// N streams on one epoll thread.
class Streams {
 public:
  Streams(const std::string& queryUrl, int count, const std::string& query, bool measure)
      : measure_(measure) {
    Poco::URI uri(queryUrl);
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    const std::string request = "GET /api/v1/events/stream" + (query.empty() ? "" : "?" + query) +
                                " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    for (int i = 0; i < count; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(uri.getPort());
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
          ::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
              static_cast<ssize_t>(request.size())) {
        std::cerr << "cannot open stream " << i << ": " << std::strerror(errno) << "\n";
        std::exit(1);
      }
      conns_.push_back({fd, {}, false, 0});
    }
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      epoll_event e{};
      e.events = EPOLLIN;
      e.data.u64 = i;
      ::epoll_ctl(epoll_, EPOLL_CTL_ADD, conns_[i].fd, &e);
    }
  }
  ~Streams() {
    for (Conn& c : conns_) ::close(c.fd);
    ::close(epoll_);
  }

  // Reads until every head has arrived (each stream is then registered with the hub).
  bool waitForHeads(Steady::time_point deadline) {
    while (heads_ < conns_.size() && Steady::now() < deadline) poll(100);
    return heads_ == conns_.size();
  }
  // Reads until `total` messages per stream arrived or the deadline passed.
  void readUntil(Steady::time_point deadline, std::uint64_t perStream = 0) {
    while (Steady::now() < deadline) {
      if (perStream && done(perStream)) return;
      poll(50);
    }
  }
  bool done(std::uint64_t perStream) const {
    for (const Conn& c : conns_) {
      if (c.messages < perStream) return false;
    }
    return true;
  }
  std::uint64_t messages() const {
    std::uint64_t n = 0;
    for (const Conn& c : conns_) n += c.messages;
    return n;
  }
  std::vector<double>& latencies() { return latencies_; }

 private:
  struct Conn {
    int fd;
    std::string buffer;
    bool head;
    std::uint64_t messages;
  };

  void poll(int timeoutMs) {
    epoll_event events[64];
    int n = ::epoll_wait(epoll_, events, 64, timeoutMs);
    for (int i = 0; i < n; ++i) {
      Conn& c = conns_[events[i].data.u64];
      char chunk[65536];
      ssize_t got = ::recv(c.fd, chunk, sizeof chunk, MSG_DONTWAIT);
      if (got <= 0) {
        if (got == 0) {
          std::cerr << "a stream ended\n";
          ::epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr);
        }
        continue;
      }
      const double now = wallMillis();
      c.buffer.append(chunk, static_cast<std::size_t>(got));
      if (!c.head) {
        std::size_t end = c.buffer.find("\r\n\r\n");
        if (end == std::string::npos) continue;
        if (c.buffer.compare(0, 12, "HTTP/1.1 200") != 0) {
          std::cerr << "a stream was refused: " << c.buffer.substr(0, c.buffer.find('\r')) << "\n";
          std::exit(1);
        }
        c.head = true;
        ++heads_;
        c.buffer.erase(0, end + 4);
      }
      std::size_t start = 0;
      for (;;) {
        std::size_t end = c.buffer.find("\n\n", start);
        if (end == std::string::npos) break;
        if (c.buffer.compare(start, 4, "id: ") == 0) {
          ++c.messages;
          if (measure_) {
            std::size_t at = c.buffer.find("\"received_at\":\"", start);
            if (at != std::string::npos && at < end) {
              double stamped = isoMillis(c.buffer.c_str() + at + 15);
              if (stamped > 0) latencies_.push_back(now - stamped);
            }
          }
        }
        start = end + 2;
      }
      c.buffer.erase(0, start);
    }
  }

  const bool measure_;
  int epoll_ = -1;
  std::vector<Conn> conns_;
  std::size_t heads_ = 0;
  std::vector<double> latencies_;
};

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::size_t k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

int latency(const std::string& ingestUrl, const std::string& queryUrl, const std::string& bodyFile,
            int streams, double rate, double seconds) {
  std::ifstream in(bodyFile, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  const std::string body = text.str();
  Streams readers(queryUrl, streams, "", true);
  if (!readers.waitForHeads(Steady::now() + std::chrono::seconds(30))) {
    std::cerr << "not every stream answered\n";
    return 1;
  }
  const std::uint64_t total = static_cast<std::uint64_t>(rate * seconds);
  std::atomic<std::uint64_t> next{0};
  std::atomic<std::uint64_t> stored{0};
  const Steady::time_point start = Steady::now() + std::chrono::milliseconds(100);
  Poco::URI ingest(ingestUrl);
  std::vector<std::thread> posters;
  for (int t = 0; t < 32; ++t) {
    posters.emplace_back([&] {
      Poco::Net::HTTPClientSession session(ingest.getHost(), ingest.getPort());
      session.setKeepAlive(true);
      for (;;) {
        std::uint64_t k = next.fetch_add(1);
        if (k >= total) return;
        std::this_thread::sleep_until(
            start + std::chrono::microseconds(static_cast<std::int64_t>(k * 1e6 / rate)));
        Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, "/bitrix24/events",
                                       Poco::Net::HTTPMessage::HTTP_1_1);
        request.setContentType("application/x-www-form-urlencoded");
        request.setContentLength(static_cast<std::streamsize>(body.size()));
        request.setKeepAlive(true);
        try {
          session.sendRequest(request) << body;
          Poco::Net::HTTPResponse response;
          std::istream& answer = session.receiveResponse(response);
          std::string drained;
          Poco::StreamCopier::copyToString(answer, drained);
          if (response.getStatus() == Poco::Net::HTTPResponse::HTTP_OK) ++stored;
        } catch (const Poco::Exception& e) {
          std::cerr << "post failed: " << e.displayText() << "\n";
          session.reset();
        }
      }
    });
  }
  // Read while posting, and up to 5 s after, until every stream has every event.
  std::thread reader([&] {
    readers.readUntil(start + std::chrono::duration_cast<Steady::duration>(
                                  std::chrono::duration<double>(seconds + 5)),
                      total);
  });
  for (std::thread& t : posters) t.join();
  reader.join();
  std::vector<double>& l = readers.latencies();
  const std::size_t received = l.size();
  const double p50 = percentile(l, 0.50);
  const double p99 = percentile(l, 0.99);
  const double max = l.empty() ? 0 : *std::max_element(l.begin(), l.end());
  std::printf("%d %.0f %llu %llu %zu %.1f %.1f %.1f\n", streams, rate,
              static_cast<unsigned long long>(stored.load()),
              static_cast<unsigned long long>(stored.load() * static_cast<std::uint64_t>(streams)),
              received, p50, p99, max);
  return 0;
}

int tail(const std::string& queryUrl, int streams, double seconds, const std::string& query) {
  Streams readers(queryUrl, streams, query, false);
  const Steady::time_point end = Steady::now() + std::chrono::duration_cast<Steady::duration>(
                                                     std::chrono::duration<double>(seconds));
  if (!readers.waitForHeads(end)) {
    std::cerr << "not every stream answered\n";
    return 1;
  }
  std::cout << "ready" << std::endl;  // the script starts its load after this line
  readers.readUntil(end);
  std::printf("%d %llu\n", streams, static_cast<unsigned long long>(readers.messages()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 7 && a[0] == "latency") {
    return latency(a[1], a[2], a[3], std::stoi(a[4]), std::stod(a[5]), std::stod(a[6]));
  }
  if ((a.size() == 4 || a.size() == 5) && a[0] == "tail") {
    return tail(a[1], std::stoi(a[2]), std::stod(a[3]), a.size() == 5 ? a[4] : "");
  }
  std::cerr << "usage: b24es-bench-stream latency INGEST_URL QUERY_URL BODY_FILE STREAMS RATE "
               "SECONDS\n       b24es-bench-stream tail QUERY_URL STREAMS SECONDS [QUERY]\n";
  return 2;
}

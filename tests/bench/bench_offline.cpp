// Offline-queue pass benchmark (run by scripts/bench-offline; not a test): an in-process service
// installs one portal whose client_endpoint is the fake portal on 127.0.0.1, the fake queues N
// records, and one OfflineQueue pass pulls them with a real clock and real sleeps, paced by
// --rate/--burst. Prints records stored per second and the REST calls made.
#include <Poco/NumberParser.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "b24_fake.h"
#include "oauth_fake.h"
#include "offline_queue.h"
#include "rest_client.h"
#include "service.h"
#include "test_support.h"

using namespace b24es;
using namespace b24es::test;

int main(int argc, char** argv) {
  int records = 1000;
  double rate = 2, burst = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--records")) records = std::stoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rate")) rate = std::stod(argv[i + 1]);
    if (!std::strcmp(argv[i], "--burst")) burst = std::stod(argv[i + 1]);
  }
  TempDir dir;
  SystemClock clock;
  FakeBitrix24 portal;
  Settings settings = testSettings(dir);
  settings.rest.allowHttp = true;
  settings.rest.allowedHosts = {"127.0.0.1"};
  settings.rest.rate = rate;
  settings.rest.burst = burst;
  InstallSpec spec;
  spec.clientEndpoint = portal.clientEndpoint();
  spec.expires = clock.nowSeconds() + 3600;
  portal.acceptToken(spec.accessToken);
  Service service(settings, clock);
  service.start();
  if (postForm(service.ingestUrl(), settings.ingest.path, installForm(spec)).status != 200) {
    std::cerr << "install failed\n";
    return 1;
  }
  portal.queueOffline("ONCRMDEALADD", records);
  PortalRecord p = service.storage().portalState().installedPortals(spec.memberId).at(0);
  OfflineQueue queue(service.rest(), service.storage().portalState(), clock);
  auto started = std::chrono::steady_clock::now();
  OfflinePassReport report = queue.pass(p);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  service.stop();
  std::size_t calls = 0;  // HTTP requests: the commands inside a batch are not calls of their own
  for (const FakeBitrix24::Request& r : portal.requests()) calls += r.batchKey.empty() ? 1 : 0;
  std::printf(
      "records=%d stored=%zu failed=%d rate=%g burst=%g calls=%zu seconds=%.2f "
      "records_per_second=%.1f\n",
      records, report.fetched, report.failed ? 1 : 0, rate, burst, calls, seconds,
      static_cast<double>(report.fetched) / seconds);
  return report.failed ? 1 : 0;
}

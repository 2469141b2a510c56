// The fake portal of the tests (tests/b24_fake.h) as a program, for trying the store by hand
// (README "Talking to Bitrix24", "Tried as a new user"): serves the fake REST API on 127.0.0.1
// and a free port, prints `fake-portal client_endpoint=URL`, and reads commands on stdin:
//   queue EVENT N   queue N offline records of EVENT (printed: their ids)
//   queued          how many records wait in the offline queue
//   bindings        the bindings, one per line
//   requests        the methods called so far, one per line
//   quit            (or end of input) stops
// Not a test; not installed.
#include <iostream>
#include <sstream>
#include <string>

#include "b24_fake.h"

int main(int argc, char** argv) {
  b24es::test::FakeBitrix24 portal;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--token") portal.acceptToken(argv[i + 1]);
  }
  std::cout << "fake-portal client_endpoint=" << portal.clientEndpoint() << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string command;
    in >> command;
    if (command == "queue") {
      std::string event;
      int n = 0;
      in >> event >> n;
      for (std::int64_t id : portal.queueOffline(event, n)) std::cout << id << ' ';
      std::cout << std::endl;
    } else if (command == "queued") {
      std::cout << portal.offlineQueued() << std::endl;
    } else if (command == "bindings") {
      for (const auto& b : portal.bindings()) {
        std::cout << b.event << ' ' << (b.offline ? "offline" : "online") << ' ' << b.handler
                  << '\n';
      }
      std::cout << std::flush;
    } else if (command == "requests") {
      for (const auto& r : portal.requests()) {
        std::cout << (r.batchKey.empty() ? "" : "  ") << r.method << '\n';
      }
      std::cout << std::flush;
    } else if (command == "quit") {
      break;
    }
  }
  return 0;
}

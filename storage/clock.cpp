#include "clock.h"

#include <chrono>

namespace b24es {

std::int64_t SystemClock::nowMillis() const {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace b24es

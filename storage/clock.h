// The time source of the service. Everything that stores or compares a time asks a Clock,
// so tests can move time without sleeping.
#pragma once

#include <cstdint>

namespace b24es {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch. Thread-safe in every implementation.
  virtual std::int64_t nowMillis() const = 0;
  std::int64_t nowSeconds() const { return nowMillis() / 1000; }
};

// The wall clock. Stateless, thread-safe.
class SystemClock final : public Clock {
 public:
  std::int64_t nowMillis() const override;
};

}  // namespace b24es

#include "reactor.h"

#include <Poco/Exception.h>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace b24es {
namespace {

// epoll data of the eventfd; every other registration carries its Handler.
char wakeTag = 0;

}  // namespace

Reactor::Reactor()
    : epoll_(::epoll_create1(EPOLL_CLOEXEC)), wakeFd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  epoll_event e{};
  e.events = EPOLLIN;
  e.data.ptr = &wakeTag;
  if (epoll_ < 0 || wakeFd_ < 0 || ::epoll_ctl(epoll_, EPOLL_CTL_ADD, wakeFd_, &e) != 0) {
    int error = errno;
    if (epoll_ >= 0) ::close(epoll_);
    if (wakeFd_ >= 0) ::close(wakeFd_);
    throw Poco::SystemException("cannot create an event loop", std::strerror(error));
  }
}

Reactor::~Reactor() {
  ::close(epoll_);
  ::close(wakeFd_);
}

bool Reactor::watch(int fd, Handler* handler, std::uint32_t& registered, std::uint32_t wanted) {
  if (registered == wanted) return true;
  epoll_event e{};
  e.events = wanted;
  e.data.ptr = handler;
  int op = wanted == 0 ? EPOLL_CTL_DEL : registered == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
  bool ok = ::epoll_ctl(epoll_, op, fd, &e) == 0;
  registered = wanted;
  return ok;
}

void Reactor::post(std::function<void()> task) {
  // The eventfd is written under the lock: once the loop has run the task, its owner may stop
  // and destroy the reactor, which must not happen between the push and the write.
  MutexLock lock(mutex_);
  if (posted_.empty()) {
    std::uint64_t one = 1;
    [[maybe_unused]] ssize_t written = ::write(wakeFd_, &one, sizeof one);
  }
  posted_.push_back(std::move(task));
}

void Reactor::runPosted() {
  std::uint64_t count;
  while (::read(wakeFd_, &count, sizeof count) > 0) {
  }
  {
    MutexLock lock(mutex_);
    running_.swap(posted_);  // both keep their capacity: no allocation per wake-up
  }
  for (auto& task : running_) task();
  running_.clear();
}

bool Reactor::run(Clock::duration tick, const std::function<bool(Clock::time_point)>& afterEach) {
  epoll_event events[64];
  Clock::time_point nextTick = Clock::now() + tick;
  for (;;) {
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(nextTick - Clock::now());
    int n = ::epoll_wait(epoll_, events, 64, static_cast<int>(std::max<long>(0, wait.count())));
    if (n < 0 && errno != EINTR) return false;
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == &wakeTag) {
        runPosted();
      } else {
        static_cast<Handler*>(events[i].data.ptr)->onReady(events[i].events);
      }
    }
    Clock::time_point now = Clock::now();
    if (now >= nextTick) nextTick = now + tick;
    if (!afterEach(now)) return true;
  }
}

}  // namespace b24es

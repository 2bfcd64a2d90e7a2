// The loop's move-only task: small functions stored in place, large ones on the heap, both
// called, moved and destroyed exactly once; move-only captures accepted.

#include "net/task.hpp"

#include "exchange.hpp"

#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace lameduck::detail {
namespace {

// Counts how many copies of itself are alive.
struct counted {
  explicit counted(int& alive) noexcept : alive_(&alive) { ++*alive_; }
  counted(counted&& o) noexcept : alive_(o.alive_) { ++*alive_; }
  counted& operator=(counted&&) = delete;
  ~counted() { --*alive_; }
  int* alive_;
};

TEST(Task, CallsASmallMoveOnlyFunction) {
  auto p = std::make_unique<int>(41);
  int seen = 0;
  task t([p = std::move(p), &seen] { seen = *p + 1; });
  ASSERT_TRUE(t);
  t();
  EXPECT_EQ(seen, 42);
}

TEST(Task, KeepsAPostedResponseInline) {
  // What exchange::commit posts from another thread for every response completed there.
  static_assert(task::stores_inline<exchange::posted_op>);
  static_assert(!task::stores_inline<std::array<char, 2 * task::inline_size>>);
}

TEST(Task, CallsALargeFunctionOnTheHeap) {
  std::array<char, 4 * task::inline_size> big{};
  big[0] = 'x';
  char seen = 0;
  task t([big, &seen] { seen = big[0]; });
  task moved(std::move(t));
  EXPECT_FALSE(t);  // NOLINT(bugprone-use-after-move): moved-from is empty
  moved();
  EXPECT_EQ(seen, 'x');
}

TEST(Task, DestroysEveryCaptureExactlyOnce) {
  int alive = 0;
  {
    std::vector<task> queue;
    for (int i = 0; i < 100; ++i)  // grows the vector, moving the tasks each time
      queue.emplace_back([c = counted(alive)] {});
    std::array<char, 2 * task::inline_size> big{};
    queue.emplace_back([c = counted(alive), big] {});
    EXPECT_EQ(alive, 101);
    task other = std::move(queue.back());
    queue.pop_back();
    EXPECT_EQ(alive, 101);
    other = std::move(queue.front());  // destroys the large one
    EXPECT_EQ(alive, 100);
  }
  EXPECT_EQ(alive, 0);
}

}  // namespace
}  // namespace lameduck::detail

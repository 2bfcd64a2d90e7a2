#pragma once
// A move-only function for a loop's queue of posted work. std::function wants copyable
// functions (a posted response owns its body and a reference to its exchange) and C++20 has
// no std::move_only_function; this one also keeps small functions inline, so a queue that
// has grown once posts without allocating.

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace lameduck::detail {

/// A move-only void() function; functions of up to inline_size bytes are stored in place.
class task {
 public:
  /// The largest function stored without allocating: a posted response (a reference, the
  /// operation and a std::string) fits.
  static constexpr std::size_t inline_size = 56;

  task() noexcept = default;

  template <class F, class D = std::decay_t<F>,
            class = std::enable_if_t<!std::is_same_v<D, task> && std::is_invocable_v<D&>>>
  task(F&& f) {  // NOLINT(google-explicit-constructor): posts take lambdas as they are
    if constexpr (stores_inline<D>) {
      ::new (static_cast<void*>(storage_)) D(std::forward<F>(f));
      ops_ = &inline_ops<D>;
    } else {
      ::new (static_cast<void*>(storage_)) D*(new D(std::forward<F>(f)));
      ops_ = &heap_ops<D>;
    }
  }

  task(task&& other) noexcept : ops_(std::exchange(other.ops_, nullptr)) {
    if (ops_) ops_->move(other.storage_, storage_);
  }

  task& operator=(task&& other) noexcept {
    if (this != &other) {
      reset();
      ops_ = std::exchange(other.ops_, nullptr);
      if (ops_) ops_->move(other.storage_, storage_);
    }
    return *this;
  }

  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() { reset(); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }
  /// Calls the function; it stays stored (and is destroyed with the task).
  void operator()() { ops_->call(storage_); }

  /// Whether a function of type D is stored in place, without allocating.
  template <class D>
  static constexpr bool stores_inline =
      sizeof(D) <= inline_size &&
      alignof(D) <= alignof(std::max_align_t) && std::is_nothrow_move_constructible_v<D>;

 private:
  struct operations {
    void (*call)(void* self);
    void (*move)(void* from, void* to) noexcept;  // move-constructs, then destroys from
    void (*destroy)(void* self) noexcept;
  };

  template <class D>
  static constexpr operations inline_ops{
      [](void* self) { (*static_cast<D*>(self))(); },
      [](void* from, void* to) noexcept {
        ::new (to) D(std::move(*static_cast<D*>(from)));
        static_cast<D*>(from)->~D();
      },
      [](void* self) noexcept { static_cast<D*>(self)->~D(); },
  };

  template <class D>
  static constexpr operations heap_ops{
      [](void* self) { (**static_cast<D**>(self))(); },
      [](void* from, void* to) noexcept { ::new (to) D*(*static_cast<D**>(from)); },
      [](void* self) noexcept { delete *static_cast<D**>(self); },
  };

  void reset() noexcept {
    if (ops_) std::exchange(ops_, nullptr)->destroy(storage_);
  }

  alignas(std::max_align_t) unsigned char storage_[inline_size];
  const operations* ops_ = nullptr;
};

}  // namespace lameduck::detail

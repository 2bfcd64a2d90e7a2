#pragma once
// A circular doubly-linked list threaded through its elements: O(1) insert and remove with no
// allocation, so moving a connection between lists on every request costs nothing.

namespace lameduck::detail {

/// The links an element carries for one list.
struct list_link {
  list_link* prev = nullptr;
  list_link* next = nullptr;
  bool linked() const noexcept { return next != nullptr; }
  void unlink() noexcept {
    if (!next) return;
    prev->next = next;
    next->prev = prev;
    prev = next = nullptr;
  }
};

/// A list of T through its base class Hook (a list_link), so that T can be on several lists.
template <class T, class Hook>
class intrusive_list {
 public:
  intrusive_list() noexcept { head_.prev = head_.next = &head_; }
  intrusive_list(const intrusive_list&) = delete;
  intrusive_list& operator=(const intrusive_list&) = delete;

  bool empty() const noexcept { return head_.next == &head_; }
  T* front() const noexcept { return empty() ? nullptr : from_link(head_.next); }
  void push_back(T& t) noexcept {
    list_link& l = static_cast<Hook&>(t);
    l.prev = head_.prev;
    l.next = &head_;
    head_.prev->next = &l;
    head_.prev = &l;
  }
  /// Calls f on every element; f may unlink the element it is given.
  template <class F>
  void for_each(F&& f) {
    for (list_link* l = head_.next; l != &head_;) {
      list_link* next = l->next;
      f(*from_link(l));
      l = next;
    }
  }

 private:
  static T* from_link(list_link* l) noexcept { return static_cast<T*>(static_cast<Hook*>(l)); }
  list_link head_;
};

}  // namespace lameduck::detail

// ksnet/function_ref.hpp - a reference to a callable that is called during one call and
// never kept (what a blocking call is given). Unlike std::function it never allocates:
// a lambda capturing more than two words would cost a heap allocation per read or write.
// It must not outlive the callable it refers to: bind a named lambda, or pass a
// temporary straight as an argument.
#pragma once

#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>

namespace ksnet {

template <class Signature>
class FunctionRef;

template <class R, class... Args>
class FunctionRef<R(Args...)> {
public:
    FunctionRef() = default;
    FunctionRef(std::nullptr_t) {}  // NOLINT: empty, as std::function's
    template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef> &&
                                                std::is_invocable_r_v<R, F &, Args...>>>
    FunctionRef(F &&f)  // NOLINT: converts from any callable, as std::function does
        : object_(const_cast<void *>(static_cast<const void *>(std::addressof(f)))),
          invoke_([](void *object, Args... args) -> R {
              return (*static_cast<std::remove_reference_t<F> *>(object))(std::forward<Args>(args)...);
          }) {}

    R operator()(Args... args) const { return invoke_(object_, std::forward<Args>(args)...); }
    explicit operator bool() const { return invoke_ != nullptr; }

private:
    void *object_ = nullptr;
    R (*invoke_)(void *, Args...) = nullptr;
};

}  // namespace ksnet

// value.cpp - refhost::Value, the owning handle of the C++ API.
#include "object.hpp"
#include "refhost.hpp"

namespace refhost {

Value Value::steal(ksp_value v) { return Value(v); }

Value Value::borrow(ksp_value v) {
    incref(v);
    return Value(v);
}

Value::Value(const Value& other) : v_(other.v_) { incref(v_); }
Value::Value(Value&& other) noexcept : v_(other.v_) { other.v_ = nullptr; }

Value& Value::operator=(const Value& other) {
    if (this != &other) {
        incref(other.v_);
        decref(v_);
        v_ = other.v_;
    }
    return *this;
}

Value& Value::operator=(Value&& other) noexcept {
    if (this != &other) {
        decref(v_);
        v_ = other.v_;
        other.v_ = nullptr;
    }
    return *this;
}

Value::~Value() { decref(v_); }

ksp_value Value::release() {
    ksp_value v = v_;
    v_ = nullptr;
    return v;
}

}  // namespace refhost

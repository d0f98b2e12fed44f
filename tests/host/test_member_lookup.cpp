// test_member_lookup.cpp - a type's name index finds what a walk along the base chain
// finds: the derived type first, and within one type a getter before a method.
#include <string>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "refhost.hpp"
#include "support.hpp"

using refhost::Gil;
using refhost::Host;
using refhost::Value;
using support::LeakGuard;
using support::error_of;

namespace {

const ksp_host* H;

// A method or getter that returns the int N, so a test can tell which one it reached.
template <int N>
ksp_value method_returning(void*, ksp_value, size_t, const ksp_value*) {
    return H->int_new(N);
}
template <int N>
ksp_value getter_returning(void*, ksp_value) {
    return H->int_new(N);
}

// Methods "m0".."m39" returning their index: more names than the table's first size.
template <size_t... I>
std::vector<ksp_method> many_methods(std::vector<std::string>& names, std::index_sequence<I...>) {
    names = {("m" + std::to_string(I))...};
    return {ksp_method{names[I].c_str(), method_returning<static_cast<int>(I)>, nullptr, nullptr}...};
}

Value make_type(const char* name, ksp_value base, const std::vector<ksp_method>& methods,
                const std::vector<ksp_getter>& getters) {
    ksp_type_spec spec{};
    spec.size = sizeof spec;
    spec.name = name;
    spec.base = base;
    spec.methods = methods.data();
    spec.nmethods = methods.size();
    spec.getters = getters.data();
    spec.ngetters = getters.size();
    Value t = Value::steal(H->type_new(&spec));
    REQUIRE(t);
    return t;
}

}  // namespace

TEST_SUITE("objects") {

TEST_CASE("member_lookup_keeps_its_order_along_the_base_chain") {
    LeakGuard guard;
    Host h(support::options_for("/nonexistent"));
    Gil g(h);
    H = h.table();
    // Base: a getter and a method of the same name ("both"), and names Derived redefines
    // as the other kind.
    Value base = make_type("Base", nullptr,
                           {{"method_in_base", method_returning<2>, nullptr, nullptr},
                            {"both", method_returning<5>, nullptr, nullptr},
                            {"overridden", method_returning<3>, nullptr, nullptr},
                            {"only_in_base", method_returning<6>, nullptr, nullptr}},
                           {{"getter_in_base", getter_returning<1>, nullptr},
                            {"both", getter_returning<4>, nullptr}});
    std::vector<std::string> names;
    std::vector<ksp_method> methods = many_methods(names, std::make_index_sequence<40>{});
    methods.push_back({"getter_in_base", method_returning<10>, nullptr, nullptr});
    methods.push_back({"overridden", method_returning<30>, nullptr, nullptr});
    methods.push_back({"overridden", method_returning<31>, nullptr, nullptr});  // the first one counts
    Value derived = make_type("Derived", base.get(), methods, {{"method_in_base", getter_returning<20>, nullptr}});
    Value d = Value::steal(H->object_new(derived.get(), nullptr));
    REQUIRE(d);

    // Derived's method hides Base's getter, and Derived's getter hides Base's method.
    CHECK(h.to_int(h.call_method(d, "getter_in_base")) == 10);
    CHECK(h.to_int(h.call(h.getattr(d, "getter_in_base"))) == 10);
    CHECK(h.to_int(h.getattr(d, "method_in_base")) == 20);
    CHECK(error_of([&] { h.call_method(d, "method_in_base"); }) == "'int' object is not callable");
    // Within one type, the getter wins for an attribute.
    CHECK(h.to_int(h.getattr(d, "both")) == 4);
    // Overriding, inheriting, and many names.
    CHECK(h.to_int(h.call_method(d, "overridden")) == 30);
    CHECK(h.to_int(h.call_method(d, "only_in_base")) == 6);
    for (int i = 0; i < 40; i++) CHECK(h.to_int(h.call_method(d, "m" + std::to_string(i))) == i);
    // From the type, only methods count: Base's method_in_base, though Derived's getter
    // hides it on instances.
    CHECK(h.to_int(h.call(h.getattr(derived, "method_in_base"), {d})) == 2);
    CHECK(h.to_int(h.call(h.getattr(derived, "both"), {d})) == 5);
    // Absent names.
    CHECK(error_of([&] { h.getattr(d, "m40"); }) == "'Derived' object has no attribute 'm40'");
    CHECK(error_of([&] { h.call_method(d, ""); }) == "'Derived' object has no attribute ''");
    CHECK(error_of([&] { h.getattr(derived, "getter_in_base_"); }) ==
          "type 'Derived' has no attribute 'getter_in_base_'");
}

}  // TEST_SUITE

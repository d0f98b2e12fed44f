// describe_cmd.cpp - `ksphost describe NAME`: import a module and print describe().
#include <cstdio>

#include "cli/commands.hpp"

int describe_main(refhost::Host& host, int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: ksphost describe NAME\n");
        return 2;
    }
    refhost::Gil gil(host);
    refhost::Value module = host.import(argv[1]);  // ScriptError is reported by main
    std::fputs(host.describe(module).c_str(), stdout);
    return 0;
}

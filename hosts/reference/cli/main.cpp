// ksphost - command-line front end of the reference host.
//
//   ksphost [-I DIR]... [--checking] COMMAND [ARGS...]
//
// Plugins are searched in the -I directories in order, then in $KSPATH. To add a
// subcommand, write `int NAME_main(refhost::Host&, int, char**)` in its own file,
// declare it in commands.hpp and add a row to kCommands.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli/commands.hpp"

namespace {

struct Command {
    const char* name;
    const char* usage;
    const char* help;
    int (*run)(refhost::Host&, int, char**);
};

const Command kCommands[] = {
    {"describe", "describe NAME", "import module NAME and print its members, types, methods and docs", describe_main},
    {"demo", "demo [ARGS...]", "run the net demo", demo_main},
};

void usage(std::FILE* out) {
    std::fprintf(out,
                 "usage: ksphost [-I DIR]... [--checking] COMMAND [ARGS...]\n\n"
                 "  -I DIR      search DIR for plugins (before $KSPATH); repeatable\n"
                 "  --checking  debug mode: catch double releases and stale handles\n\ncommands:\n");
    for (const Command& c : kCommands) std::fprintf(out, "  %-16s %s\n", c.usage, c.help);
}

}  // namespace

int main(int argc, char** argv) {
    refhost::HostOptions options;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            usage(stdout);
            return 0;
        } else if (arg == "--checking") {
            options.checking = true;
        } else if (arg == "-I" && i + 1 < argc) {
            options.plugin_dirs.push_back(argv[++i]);
        } else if (arg.rfind("-I", 0) == 0 && arg.size() > 2) {
            options.plugin_dirs.push_back(arg.substr(2));
        } else {
            std::fprintf(stderr, "ksphost: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i == argc) {
        usage(stderr);
        return 2;
    }
    for (const Command& c : kCommands) {
        if (std::strcmp(c.name, argv[i]) != 0) continue;
        try {
            refhost::Host host(options);
            return c.run(host, argc - i, argv + i);
        } catch (const refhost::ScriptError& e) {
            std::fprintf(stderr, "ksphost: %s: %s\n", refhost::error_kind_name(e.kind), e.what());
        } catch (const std::exception& e) {
            std::fprintf(stderr, "ksphost: %s\n", e.what());
        }
        return 1;
    }
    std::fprintf(stderr, "ksphost: unknown command '%s'\n", argv[i]);
    usage(stderr);
    return 2;
}

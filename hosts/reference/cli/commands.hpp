// commands.hpp - the subcommands of `ksphost`.
//
// Each subcommand is a main-like function: argv[0] is the subcommand's name, the rest
// are its arguments. It receives a ready Host (built from -I dirs and KSPATH) and does
// NOT hold the interpreter lock on entry: it takes refhost::Gil itself (and may start
// threads that take it too). It returns the process exit status.
#ifndef REFHOST_CLI_COMMANDS_HPP
#define REFHOST_CLI_COMMANDS_HPP

#include "refhost.hpp"

int describe_main(refhost::Host& host, int argc, char** argv);
int demo_main(refhost::Host& host, int argc, char** argv);
int serve_main(refhost::Host& host, int argc, char** argv);

#endif

// demo.cpp - `ksphost demo`: a talk server and a client over loopback, both written
// against the `net` module exactly as a script would use it, on two interpreter
// threads. The client prints the whole exchange.
//
//   ksphost -I build/plugin demo [LINE...]
#include <cctype>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.hpp"

using refhost::Gil;
using refhost::Host;
using refhost::Value;

namespace {

// The server: greets the client by the name accept() gave, then answers each line in
// upper case until the client closes.
void serve(Host &h, const Value &listener, std::string &error) {
    Gil g(h);
    try {
        Value pair = h.call_method(listener, "accept");
        Value conn = h.item(pair, 0);
        h.call_method(conn, "write", {h.str("welcome, " + h.to_str(h.item(pair, 1)) + "\n")});
        Value lines = h.iter(conn);
        while (Value line = h.next(lines)) {
            std::string text = h.to_bytes(line);
            for (char &ch : text) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
            h.call_method(conn, "write", {h.bytes(text + "\n")});
        }
        h.call_method(conn, "close");
    } catch (const std::exception &e) {
        error = e.what();
    }
}

// The client: connects, prints the greeting, sends each line and prints each answer.
void talk(Host &h, const Value &SocketIO, const Value &port, const std::vector<std::string> &say) {
    Value client = h.call(SocketIO);
    h.call_method(client, "connect", {h.tuple({h.str("localhost"), port})});
    std::printf("client: %s\n", h.repr(client).c_str());
    Value replies = h.iter(client);
    std::printf("client < %s\n", h.to_bytes(h.next(replies)).c_str());
    for (const std::string &line : say) {
        std::printf("client > %s\n", line.c_str());
        h.call_method(client, "write", {h.bytes(line + "\n")});  // bytes: any argument, UTF-8 or not
        Value reply = h.next(replies);
        std::printf("client < %s\n", reply ? h.to_bytes(reply).c_str() : "(end of stream)");
    }
    h.call_method(client, "close");
}

}  // namespace

int demo_main(Host &h, int argc, char **argv) {
    std::vector<std::string> say;
    for (int i = 1; i < argc; ++i) {
        say.emplace_back(argv[i]);
        if (say.back().find_first_of("\r\n") != std::string::npos) {
            std::fprintf(stderr, "ksphost demo: argument %d holds a line break; give each line as its own argument\n", i);
            return 2;
        }
    }
    if (say.empty()) say = {"hello, net", "every byte arrives once, in order", "goodbye"};

    Gil gil(h);
    Value net = h.import("net");
    std::printf("import net: %s\n", h.repr(net).c_str());
    Value SocketIO = h.getattr(net, "SocketIO");

    Value listener = h.call(SocketIO);
    h.call_method(listener, "bind", {h.tuple({h.str("127.0.0.1"), h.integer(0)})});
    h.call_method(listener, "listen");
    std::printf("server: %s\n", h.repr(listener).c_str());

    std::string server_error;
    std::thread server([&] { serve(h, listener, server_error); });
    auto join_server = [&] {
        void *token = h.table()->release_lock();  // let the server finish
        server.join();
        h.table()->acquire_lock(token);
    };
    try {
        talk(h, SocketIO, h.getattr(listener, "local_port"), say);
    } catch (...) {
        try {
            h.call_method(listener, "close");  // ends an accept() still waiting for the client
        } catch (const std::exception &) {
        }
        join_server();
        throw;
    }
    join_server();
    h.call_method(listener, "close");
    if (!server_error.empty()) {
        std::fprintf(stderr, "server: %s\n", server_error.c_str());
        return 1;
    }
    std::printf("demo: %zu line%s exchanged over loopback; sockets closed\n", say.size(), say.size() == 1 ? "" : "s");
    return 0;
}

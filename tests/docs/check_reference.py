#!/usr/bin/env python3
"""docs/reference.md against the plugin's own description (`ksphost describe net`).

Both ways: every enum member, attribute and method that describe names appears in the
reference (methods with the same signature, defaults included, as a `####` heading),
and every member, attribute or method heading of the reference exists in the plugin.

    check_reference.py KSPHOST PLUGIN_DIR REFERENCE_MD
"""
import re
import subprocess
import sys


def described(ksphost, plugin_dir):
    out = subprocess.run([ksphost, "-I", plugin_dir, "describe", "net"], check=True,
                         capture_output=True, text=True, env={"KSPATH": ""}).stdout
    members = set(re.findall(r"^\s+(net\.[A-Z]+\.[A-Z0-9_]+) = ", out, re.M))
    attributes = set(re.findall(r"^\s+(\.[a-z_]+)$", out, re.M))
    # "bind(self, addr)" -> "bind(addr)"; "gettimeout(self)" -> "gettimeout()"
    methods = {}
    for name, params in re.findall(r"^\s+(\w+)\(self(?:, )?([^)]*)\)$", out, re.M):
        methods[name] = f"{name}({params})"
    return members, attributes, methods


def documented(text):
    members = set(re.findall(r"`(net\.[A-Z]+\.[A-Z0-9_]+)`", text))
    attributes = set(re.findall(r"^\| `(\.[a-z_]+)` \|", text, re.M))
    methods = {}
    for heading in re.findall(r"^#### (.+)$", text, re.M):
        for sig in re.findall(r"`(\w+\([^`]*\))`", heading):
            methods[sig.split("(")[0]] = sig
    return members, attributes, methods


def main():
    ksphost, plugin_dir, reference = sys.argv[1:4]
    d_members, d_attrs, d_methods = described(ksphost, plugin_dir)
    with open(reference, encoding="utf-8") as f:
        r_members, r_attrs, r_methods = documented(f.read())
    problems = []
    if len(d_members) < 10 or len(d_methods) < 10:
        problems.append(f"describe output not understood: {len(d_members)} members, {len(d_methods)} methods")
    for m in sorted(d_members - r_members):
        problems.append(f"{m} is in the plugin but not in {reference}")
    for m in sorted(r_members - d_members):
        problems.append(f"{m} is in {reference} but not in the plugin")
    for a in sorted(d_attrs ^ r_attrs):
        where = "the plugin" if a in d_attrs else reference
        problems.append(f"attribute {a} is only in {where}")
    for name in sorted(set(d_methods) | set(r_methods)):
        if name not in r_methods:
            problems.append(f"method {d_methods[name]} has no '####' heading in {reference}")
        elif name not in d_methods:
            problems.append(f"method {r_methods[name]} is in {reference} but not in the plugin")
        elif d_methods[name] != r_methods[name]:
            problems.append(f"signature differs: plugin {d_methods[name]}, reference {r_methods[name]}")
    for p in problems:
        print(p)
    if not problems:
        print(f"{len(d_members)} enum members, {len(d_attrs)} attributes, {len(d_methods)} methods: all documented")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

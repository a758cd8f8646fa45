#!/usr/bin/env python3
"""Checks the module layering of src/ (ARCHITECTURE.md, "Modules"):

  base <- dns, config, core <- net <- tls <- upstream <- metrics <- proxy <- main

1. Every `#include "module/..."` in src/ must be an edge the layer order allows.
2. Each module's meson.build must declare exactly the project modules its files include (its
   static_library `dependencies:` list), so the build graph is the architecture.

  check_layers.py SRC_DIR     exit 0 when clean; otherwise one line per violation, exit 1
"""
import os
import re
import sys

# What each module may include, besides itself. The layer order above, spelled out.
ALLOWED = {
    "base": set(),
    "dns": {"base"},
    "config": {"base"},
    "core": {"base"},
    "net": {"base", "core"},
    "tls": {"base", "core", "net"},
    "upstream": {"base", "dns", "config", "core", "net", "tls"},
    "metrics": {"base", "dns", "config", "core", "net", "tls", "upstream"},
    "proxy": {"base", "dns", "config", "core", "net", "tls", "upstream", "metrics"},
    "main": {"base", "dns", "config", "core", "net", "tls", "upstream", "metrics", "proxy"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/[^"]+"', re.M)
LIBRARY_DEPS = re.compile(r"static_library\([^)]*?dependencies:\s*\[([^\]]*)\]", re.S)


def module_files(src):
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if os.path.isdir(path):
            for f in sorted(os.listdir(path)):
                if f.endswith((".h", ".cc")):
                    yield name, os.path.join(path, f)
        elif name.endswith((".h", ".cc")):
            yield "main", path


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "../../src")
    problems = []
    included = {m: set() for m in ALLOWED}
    for module, path in module_files(src):
        if module not in ALLOWED:
            problems.append(f"{path}: module '{module}' is not in the layer table")
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for target in INCLUDE.findall(text):
            if target == module or target not in ALLOWED and target != "main":
                continue
            if target not in ALLOWED[module]:
                problems.append(f"{path}: includes {target}/, which the layer order forbids "
                                f"({module} may include: {', '.join(sorted(ALLOWED[module])) or 'nothing'})")
            else:
                included[module].add(target)
    for module in ALLOWED:
        if module == "main":
            continue
        build = os.path.join(src, module, "meson.build")
        if not os.path.exists(build):
            problems.append(f"{build}: missing")
            continue
        with open(build, encoding="utf-8") as f:
            text = f.read()
        declared = set()
        for deps in LIBRARY_DEPS.findall(text) or re.findall(
                r"declare_dependency\([^)]*?dependencies:\s*\[([^\]]*)\]", text, re.S):
            declared |= {d[:-4] for d in re.findall(r"\b([a-z]+_dep)\b", deps)
                         if d[:-4] in ALLOWED}
        if declared != included[module]:
            missing = sorted(included[module] - declared)
            extra = sorted(declared - included[module])
            problems.append(f"{build}: dependencies do not match the includes"
                            + (f"; missing: {', '.join(m + '_dep' for m in missing)}" if missing else "")
                            + (f"; not included: {', '.join(m + '_dep' for m in extra)}" if extra else ""))
    for p in problems:
        print(p)
    print(f"layering: {len(problems)} problem(s) in {src}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

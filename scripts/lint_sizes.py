#!/usr/bin/env python3
"""House rule lint (run by ctest, label lint): sizes.

No C++ source file outside tests/ over 600 lines, and no function over 150
lines (the body, from the line of its opening brace to the line of its closing
brace, as clang-tidy's readability-function-size counts LineThreshold).

Functions are found by a small brace-matching scan rather than a compiler:
comments, string/char literals (raw strings too) and preprocessor lines are
blanked, then every '{' at namespace or class scope whose header looks like a
function signature (a parameter list, optional qualifiers and constructor
initialisers) opens a function. Lambdas and local classes count towards the
function that holds them. Standard library only.

Offences listed in the allowlist (default scripts/size_allowlist.txt) are
reported as allowed and do not fail the check; an entry is either
  file <path>              a file over 600 lines
  function <path> <name>   a function over 150 lines
Exit status 1 when an offence is not allowlisted.

Usage: lint_sizes.py [--root DIR | DIR] [--allowlist FILE] [--list]
  --list  print every function over the limit (allowlisted or not) and exit 0
"""

import argparse
import os
import re
import sys

AREAS = ["common", "aggregators", "ps", "worker", "scheduler", "launch", "bench"]
MAX_FILE_LINES = 600
# Files with a tighter bound of their own: the server's request loop stays a
# dispatcher, its jobs live in ps/internal/ (issue 14).
FILE_LIMITS = {"ps/server.cc": 450}
MAX_FUNCTION_LINES = 150
EXTENSIONS = (".h", ".cc", ".cpp", ".hpp")

# Keywords that open a block which is not a function even though a
# parenthesised expression precedes the brace.
CONTROL = re.compile(r"\b(if|for|while|switch|catch|do|else|try)\b\s*(\(.*)?$", re.S)
TYPE_HEAD = re.compile(r"(^|[\s;])(class|struct|union|enum)\b[^()]*$", re.S)
NAMESPACE_HEAD = re.compile(r"^\s*(inline\s+)?namespace\b|^\s*extern\b", re.S)
QUALIFIERS = re.compile(
    r"\)\s*((const|volatile|noexcept(\s*\([^()]*\))?|override|final|mutable|&|&&|"
    r"->\s*[\w:<>,\s*&]+|\[\[[^\]]*\]\])\s*)*$",
    re.S,
)
# A constructor's initialiser list: "...) : member_(...), other_{...}".
INIT_LIST = re.compile(r"\)\s*(noexcept\s*)?:(?!:)", re.S)


def blank_code(text):
    """Returns text with comments, literals and preprocessor lines replaced
    by spaces (newlines kept, so line numbers stay right)."""
    out = []
    i, n = 0, len(text)
    at_line_start = True
    while i < n:
        c = text[i]
        if at_line_start and c in " \t":
            out.append(c)
            i += 1
            continue
        if at_line_start and c == "#":
            # Preprocessor directive, with backslash continuations.
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    out.append("  \n")
                    i += 2
                    continue
                out.append(" ")
                i += 1
            continue
        at_line_start = False
        if c == "\n":
            out.append(c)
            at_line_start = True
            i += 1
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                out.append(" ")
                i += 1
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "R" and i + 1 < n and text[i + 1] == '"' and not _ident_before(text, i):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            if not m:
                out.append(c)
                i += 1
                continue
            end = text.find(")" + m.group(1) + '"', i + m.end())
            end = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c in "\"'":
            if c == "'" and i > 0 and text[i - 1].isalnum():
                out.append(" ")  # digit separator (1'000)
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _ident_before(text, i):
    return i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")


def function_name(header):
    """The (qualified) name before the parameter list of a signature."""
    depth = 0
    for k, ch in enumerate(header):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "(" and depth == 0:
            before = header[:k].rstrip()
            m = re.search(r"(operator\s*[^\s\w]+|operator\s+\w+|[~\w:]+)$", before)
            if m:
                return m.group(1).strip()
            break
    return "?"


def is_function_header(header):
    h = header.strip()
    if not h or "(" not in h:
        return False
    if CONTROL.match(h) or re.search(r"=\s*$", h):
        return False
    return bool(QUALIFIERS.search(h) or INIT_LIST.search(h))


def scan_functions(code):
    """Yields (name, open_line, close_line) for each function body."""
    line_of = [0] * (len(code) + 1)
    line = 1
    for k, ch in enumerate(code):
        line_of[k] = line
        if ch == "\n":
            line += 1
    line_of[len(code)] = line

    # Stack of scopes: "scope" (namespace/class/top), "init" (brace inside an
    # initialiser list or an initialiser at scope level), "func".
    stack = []
    header_start = 0
    k, n = 0, len(code)
    while k < n:
        ch = code[k]
        if ch == "{":
            header = code[header_start:k]
            if NAMESPACE_HEAD.search(header) or (
                TYPE_HEAD.search(header) and not INIT_LIST.search(header)
            ):
                stack.append(("scope", k))
                header_start = k + 1
            elif INIT_LIST.search(header) and re.search(r"[\w>]\s*$", header):
                # "Foo() : member_{" -- part of the header.
                depth = _match(code, k)
                k = depth
                continue
            elif is_function_header(header):
                end = _match(code, k)
                yield function_name(header), line_of[k], line_of[min(end - 1, n)]
                k = end
                header_start = k
                continue
            else:
                # An initialiser or something unknown at scope level: skip it.
                end = _match(code, k)
                k = end
                continue
        elif ch == "}":
            if stack:
                stack.pop()
            header_start = k + 1
        elif ch == ";":
            header_start = k + 1
        elif ch == ":" and re.search(r"\b(public|private|protected)\s*$", code[header_start:k]):
            header_start = k + 1
        k += 1


def _match(code, k):
    """Index just past the brace matching code[k] == '{'."""
    depth = 0
    n = len(code)
    while k < n:
        if code[k] == "{":
            depth += 1
        elif code[k] == "}":
            depth -= 1
            if depth == 0:
                return k + 1
        k += 1
    return n


def source_files(root):
    for area in AREAS:
        for dirpath, _, names in os.walk(os.path.join(root, area)):
            for name in sorted(names):
                if name.endswith(EXTENSIONS):
                    path = os.path.join(dirpath, name)
                    yield os.path.relpath(path, root)


def read_allowlist(path):
    files, functions = set(), set()
    if not path or not os.path.exists(path):
        return files, functions
    with open(path, encoding="utf-8") as f:
        for raw in f:
            words = raw.split("#", 1)[0].split()
            if len(words) == 2 and words[0] == "file":
                files.add(words[1])
            elif len(words) == 3 and words[0] == "function":
                functions.add((words[1], words[2]))
    return files, functions


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=os.path.dirname(here))
    ap.add_argument("--allowlist", default=os.path.join(here, "size_allowlist.txt"))
    ap.add_argument("--list", action="store_true")
    ap.add_argument("root_dir", nargs="?", help="same as --root")
    args = ap.parse_args()
    if args.root_dir:
        args.root = args.root_dir
    allowed_files, allowed_functions = read_allowlist(args.allowlist)

    failures = allowed = 0
    for rel in source_files(args.root):
        with open(os.path.join(args.root, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        limit = FILE_LIMITS.get(rel, MAX_FILE_LINES)
        if lines > limit and not args.list:
            ok = rel in allowed_files
            print(f"{rel}:1: file has {lines} lines (limit {limit})"
                  + (" [allowlisted]" if ok else ""))
            allowed += ok
            failures += not ok
        for name, first, last in scan_functions(blank_code(text)):
            size = last - first
            if size <= MAX_FUNCTION_LINES:
                continue
            ok = (rel, name) in allowed_functions
            if args.list:
                print(f"{rel}:{first}: {name} {size} lines")
                continue
            print(f"{rel}:{first}: function {name} has {size} lines (limit {MAX_FUNCTION_LINES})"
                  + (" [allowlisted]" if ok else ""))
            allowed += ok
            failures += not ok
    if args.list:
        return 0
    if failures:
        print(f"lint_sizes: {failures} offence(s), {allowed} allowlisted", file=sys.stderr)
        return 1
    print(f"lint_sizes: OK ({allowed} allowlisted offence(s) left)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Lists the external commands the project's scripts and tests run.

build/cleanroom.sh checks that each of them is present in a fresh Debian
root after build/deps.sh: a command a test calls but deps.sh does not
install is found there, not on a contributor's machine.

Scanned: every shell script (build/*.sh, .ci/run, rootfs init scripts that
tests run on the host are not included: they run in the guest), the Python
helpers in build/, and the Rust tests and benches (Command::new). A word
counts as a command where a shell would run it: at the start of a command
line or pipeline stage, or after a prefix command (ip netns exec NS, ina,
inb, timeout N, exec, xargs, command -v, ...). Words that are shell
builtins, keywords or functions defined in the scanned scripts are dropped,
and so are words that name no program on this machine (the caller runs
this where the tests ran, so what it prints is what they used).

Usage: build/tools-used.py            one command per line, sorted
"""

import pathlib
import re
import shlex
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Commands that take another command as their argument: the word after
# them (and after their own options and fixed arguments) is a command too.
PREFIXES = {
    "exec": 0,
    "nohup": 0,
    "sudo": 0,
    "env": 0,
    "xargs": 0,
    "command": 0,
    "setpriv": 0,
    "unshare": 0,
    "nice": 0,
    "stdbuf": 0,
    "taskset": 1,
    "timeout": 1,
    "ina": 0,
    "inb": 0,
}

# The Rust toolchain: the one thing the README asks for besides root and
# Debian's archive; not installed by build/deps.sh.
TOOLCHAIN = {"cargo", "rustc", "rustup"}

SEPARATORS = {"|", "||", "&", "&&", ";", ";;", "(", ")", "!", "{", "}", "then", "do", "else", "elif", "if", "while", "until"}
WORD = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
HEREDOC = re.compile(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?")


def shell_builtins():
    out = subprocess.run(
        ["bash", "-c", "compgen -b; compgen -k"], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def balanced(line):
    try:
        tokens(line)
        return True
    except ValueError:  # a quoted string goes on to the next line
        return False


def logical_lines(text):
    """Lines joined at backslash continuations and across multi-line quoted
    strings; heredoc bodies and multi-line array assignments left out
    (they are data or another language: guest init scripts, Python)."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        joined, j = line, i
        while (joined.endswith("\\") or not balanced(joined)) and j < len(lines) and j - i < 40:
            joined = (joined[:-1] if joined.endswith("\\") else joined + "\n") + " " + lines[j]
            j += 1
        if balanced(joined):
            line, i = joined, j
        # else: quoting shlex cannot follow ("$(grep 'a="b"')"); the line alone
        if re.match(r"^\s*[A-Za-z_][A-Za-z0-9_]*=\(\s*(#.*)?$", line):
            while i < len(lines) and not lines[i].strip().startswith(")"):
                i += 1
            i += 1
            continue
        m = HEREDOC.search(line)
        if m:
            while i < len(lines) and lines[i].strip() != m.group(1):
                i += 1
            i += 1
        yield line


def tokens(line):
    lex = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
    lex.whitespace_split = True
    lex.commenters = "#"
    return list(lex)


def tokens_or_words(line):
    try:
        return tokens(line)
    except ValueError:
        return line.split()


def command_words(toks):
    """The words of a token list that a shell would run as commands."""
    found = set()
    at_start, skip, options_ok, in_case = True, 0, False, False
    i = 0
    # A case pattern line (`x86_64 | amd64) ...`): the patterns are data.
    if ")" in toks:
        head = toks[: toks.index(")")]
        if head and all(t == "|" or WORD.match(t) or "*" in t for t in head):
            i = len(head) + 1
    # Commands given as arguments (`attack NAME ... timeout 3 hping3 ...`).
    for k in range(len(toks) - 2):
        if toks[k] == "timeout" and re.match(r"^[0-9.]+[smh]?$", toks[k + 1]):
            if WORD.match(toks[k + 2]):
                found.add(toks[k + 2])
    while i < len(toks):
        t = toks[i]
        i += 1
        if in_case:
            # `case WORD in PATTERN)`: the word and the patterns are data
            if t in (")", "esac"):
                in_case = False
                at_start = True
            continue
        if t == "case":
            in_case = True
            continue
        if t == "for" and at_start:
            at_start = False  # `for VAR in WORDS`: data up to the separator
            continue
        if t in SEPARATORS:
            at_start, skip, options_ok = True, 0, False
            continue
        if not at_start:
            continue
        if options_ok and t.startswith("-"):
            continue
        if skip:
            skip -= 1
            continue
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", t):
            if t.endswith("=") and i < len(toks) and toks[i] == "(":
                i = toks.index(")", i) + 1 if ")" in toks[i:] else len(toks)  # arr=(a b)
            continue  # FOO=bar cmd
        m = re.match(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\[@\]\}$", t)
        if m:
            found.add("@" + m.group(1))  # "${ARR[@]}" run as a command
        if not WORD.match(t):
            at_start = False
            continue
        found.add(t)
        if t == "ip" and toks[i : i + 2] == ["netns", "exec"]:
            skip, options_ok = 3, False  # ip netns exec NS CMD
            continue
        if t in PREFIXES:
            skip, options_ok = PREFIXES[t], True
            continue
        at_start = False
    return found


def shell_commands(text, functions):
    found = set()
    for line in logical_lines(text):
        toks = tokens_or_words(line)
        found |= command_words(toks)
        # Command substitutions inside quoted words are commands too.
        for t in toks:
            for inner in re.findall(r"\$\(([^()]*)\)", t):
                found |= shell_commands(inner, functions)
    return found - functions


def array_commands(text, found):
    """The first word of each array that a script runs as a command
    (QEMU=(qemu-system-x86_64 ...) then "${QEMU[@]}")."""
    run = {w[1:] for w in found if w.startswith("@")}
    firsts = set()
    for name, first in re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)=\(\s*([A-Za-z0-9_][A-Za-z0-9_.+-]*)", text):
        if name in run:
            firsts.add(first)
    return firsts


def function_names(text):
    return set(re.findall(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(\)\s*\{", text, re.M))


def main():
    # build/bench*.sh are not tests: build/bench-deps.sh installs theirs.
    shell = [p for p in sorted((ROOT / "build").glob("*.sh")) if not p.name.startswith("bench")]
    shell.append(ROOT / ".ci" / "run")
    python = sorted((ROOT / "build").glob("*.py"))
    rust = sorted((ROOT / "agent" / "tests").rglob("*.rs")) + sorted(
        (ROOT / "agent" / "src" / "bin").rglob("*.rs")
    )
    texts = {p: p.read_text() for p in shell if p.exists()}
    functions = set()
    for t in texts.values():
        functions |= function_names(t)
    candidates = set()
    for t in texts.values():
        words = shell_commands(t, functions)
        candidates |= words | array_commands(t, words)
        # What an e2e script declares it needs (build/e2e-lib.sh checks it).
        for needs in re.findall(r'NEEDS="([^"]*)"', t):
            candidates |= set(needs.split())
    for p in python:
        t = p.read_text()
        candidates |= set(re.findall(r"""\[\s*["']([A-Za-z0-9_.+-]+)["']\s*,""", t))
    for p in rust:
        t = p.read_text()
        candidates |= set(re.findall(r'Command::new\(\s*"([A-Za-z0-9_.+-]+)"', t))
    builtins = shell_builtins()
    commands = sorted(
        c
        for c in candidates
        if c not in builtins and c not in TOOLCHAIN and len(c) > 1 and shutil.which(c)
    )
    sys.stdout.write("".join(c + "\n" for c in commands))


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Installs the developer tools that build/test.sh's optional modes use,
# pinned, from crates.io (build/deps.sh has the Debian packages):
#   cargo-mutants   build/test.sh --mutants (mutation testing)
# Idempotent: a tool at the pinned version is left alone.
set -euo pipefail

MUTANTS_VERSION=27.1.0

have() { # have TOOL VERSION: TOOL --version prints VERSION
	command -v "$1" >/dev/null && "$1" --version 2>/dev/null | grep -q " $2\b"
}

if ! have cargo-mutants "$MUTANTS_VERSION"; then
	echo "dev-tools: cargo install cargo-mutants $MUTANTS_VERSION (a few minutes)"
	cargo install --locked --quiet cargo-mutants --version "$MUTANTS_VERSION"
fi

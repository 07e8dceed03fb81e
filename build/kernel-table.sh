#!/usr/bin/env bash
# Prints the tested kernel matrix (docs/appliance.md) as a Markdown table
# from the "boot-test: result ..." lines that build/boot-test.sh prints,
# one per boot, in the order they ran: kernel, Debian package (or how the
# kernel was built), architecture, checks passed, QEMU start to the first
# /metrics, and the boot test's wall time (QEMU start to the end of the
# self-test) and with the image build.
#
# Usage: build/kernel-table.sh [LOG...]   (default: stdin)
#   build/test.sh keeps its runs' lines in target/appliance/boot-results.txt
set -euo pipefail

echo "| kernel | package | arch | result | QEMU start to first scrape | boot test | with image build |"
echo "|---|---|---|---|---|---|---|"
grep -h 'boot-test: result ' "$@" | awk '
	{
		delete f
		line = $0
		sub(/.*boot-test: result /, "", line)
		while (line != "") {
			if (!match(line, /^[a-z_]+=/)) break
			k = substr(line, 1, RLENGTH - 1); line = substr(line, RLENGTH + 1)
			if (substr(line, 1, 1) == "\"") {
				e = index(substr(line, 2), "\""); v = substr(line, 2, e - 1); line = substr(line, e + 2)
			} else {
				e = index(line, " "); if (e == 0) e = length(line) + 1
				v = substr(line, 1, e - 1); line = substr(line, e)
			}
			sub(/^ +/, "", line)
			f[k] = v
		}
		total = f["passed"] + f["failed"]
		result = f["failed"] == 0 ? sprintf("pass (%d/%d)", f["passed"], total) : sprintf("**FAIL** (%d/%d)", f["passed"], total)
		if (f["reboots"] > 0) result = result ", booted twice: the kernel panicked first"
		printf "| %s (%s) | %s | %s | %s | %s s | %s s | %s s |\n", f["kernel"], f["series"], f["package"], f["arch"], result, f["first_scrape"], f["boot_wall"], f["total_wall"]
	}'

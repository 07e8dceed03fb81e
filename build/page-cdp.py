#!/usr/bin/env python3
"""Drives headless Chromium (Debian's) over the DevTools protocol on a pipe
(--remote-debugging-pipe: no port, no WebSocket library) for
build/e2e-page.sh. It loads the live page, waits until it shows what the
test asks for, saves a screenshot, then stops the agent and waits for the
page to say it is stale. Prints one "ok:" or "FAIL:" line per check and
exits 1 on any failure.

Checks, live: no console error or uncaught exception; the interface's name;
its rx and tx rates non-zero; an alert of --alert kind; at least one flow
and two topology nodes; the screenshot is not blank (luminance variance
and distinct colours of a quarter-scale capture). After --stop-pid is sent
SIGTERM: "stale since HH:MM:SS" shown and no live value left on the page.

Usage: page-cdp.py --url URL --interface IF --alert KIND --screenshot PNG
                   [--stop-pid PID] [--timeout S] [--settle S]
"""

import argparse
import base64
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe",
]
WIDTH, HEIGHT = 1280, 1000


class Browser:
    """One Chromium, one page, commands and events over fds 3 and 4."""

    def __init__(self, exe):
        self.profile = tempfile.mkdtemp(prefix="netprobe-page-")
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def fds():
            # Chromium reads commands on fd 3 and writes on fd 4. Copies
            # first, so dup2 never copies a descriptor onto itself (that
            # would leave it close-on-exec).
            r, w = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(r, 3)
            os.dup2(w, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={self.profile}", f"--window-size={WIDTH},{HEIGHT}", "about:blank"],
            preexec_fn=fds, pass_fds=(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.session = None

    def send(self, method, params=None, session=True, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self.read(deadline)
            if m is None:
                raise TimeoutError(f"no answer to {method}")
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]
            self.events.append(m)

    def read(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.from_chrome], [], [], left)[0]:
                return None
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe (crashed?)")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\0", 1)
        return json.loads(line)

    def pump(self, seconds):
        """Collects events for a while."""
        deadline = time.monotonic() + seconds
        while (m := self.read(deadline)) is not None:
            self.events.append(m)

    def open_page(self):
        targets = self.send("Target.getTargets", session=False)["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})

    def eval(self, expr):
        r = self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"evaluate: {r['exceptionDetails']}")
        return r["result"].get("value")

    def errors(self):
        """Console errors, uncaught exceptions and error log entries so far."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: " + d.get("exception", {}).get("description", d.get("text", "")))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                en = p["entry"]
                out.append(f"log ({en.get('source')}): {en.get('text')} {en.get('url', '')}")
        return out

    def screenshot(self, path, scale=1.0):
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": WIDTH, "height": min(int(size["height"]), 4000), "scale": scale}
        data = base64.b64decode(self.send("Page.captureScreenshot",
                                          {"format": "png", "clip": clip, "captureBeyondViewport": True})["data"])
        if path:
            with open(path, "wb") as f:
                f.write(data)
        return data

    def close(self):
        try:
            self.send("Browser.close", session=False, timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def png_pixels(data):
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), f"PNG depth {depth} colour type {ctype}"
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, rows, prev = zlib.decompress(idat), w * bpp, [], bytearray(w * bpp)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, h, bpp, rows


def blankness(data):
    """(luminance variance, distinct colours) of a PNG."""
    w, h, bpp, rows = png_pixels(data)
    lum, colours = [], set()
    for line in rows:
        for x in range(0, w * bpp, bpp):
            r, g, b = line[x], line[x + 1], line[x + 2]
            lum.append(0.299 * r + 0.587 * g + 0.114 * b)
            colours.add((r, g, b))
    mean = sum(lum) / len(lum)
    return sum((v - mean) ** 2 for v in lum) / len(lum), len(colours)


# What the page shows, read from its DOM.
PROBE = r"""(() => {
  const q = s => [...document.querySelectorAll(s)];
  return {
    ifaces: q('.iface').map(c => ({name: c.dataset.if,
      rx: (c.querySelector('[data-rate=rx]') || {}).textContent || '',
      tx: (c.querySelector('[data-rate=tx]') || {}).textContent || ''})),
    alerts: q('#alerts tr.active, #alerts tr.recent').map(r => r.className + ' ' + r.cells[0].textContent + ' ' + r.cells[1].textContent),
    flows: q('#flows tr').length - 1,
    nodes: q('#topo circle').length,
    edges: q('#topo line').length,
    stale: document.body.classList.contains('stale'),
    state: document.getElementById('state').textContent,
    banner: document.getElementById('banner').textContent,
    liveDigits: q('.v').filter(e => /\d/.test(e.textContent)).length,
    values: q('.v').length,
  };
})()"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--interface", required=True)
    ap.add_argument("--alert", required=True)
    ap.add_argument("--screenshot", required=True)
    ap.add_argument("--stop-pid", type=int)
    ap.add_argument("--timeout", type=float, default=40)
    ap.add_argument("--settle", type=float, default=2, help="seconds to keep watching before the screenshot")
    a = ap.parse_args()
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        print("FAIL: chromium is missing (run build/deps.sh)")
        return 1
    failed = 0

    def check(cond, msg):
        nonlocal failed
        print(("  ok: " if cond else "  FAIL: ") + msg, flush=True)
        failed += 0 if cond else 1

    nonzero = re.compile(r"^(?!0 )[0-9.]+ [kMGT]?bit/s$")
    b = Browser(exe)
    try:
        b.open_page()
        t0 = time.monotonic()
        b.send("Page.navigate", {"url": a.url})
        seen = {}
        while time.monotonic() - t0 < a.timeout:
            b.pump(0.5)
            seen = b.eval(PROBE)
            mine = [i for i in seen["ifaces"] if i["name"] == a.interface]
            if (mine and nonzero.match(mine[0]["rx"]) and nonzero.match(mine[0]["tx"])
                    and any(a.alert in x for x in seen["alerts"]) and seen["flows"] > 0 and seen["nodes"] >= 2):
                break
        took = time.monotonic() - t0
        mine = [i for i in seen.get("ifaces", []) if i["name"] == a.interface]
        check(bool(mine), f"interface {a.interface} shown (page shows {[i['name'] for i in seen.get('ifaces', [])]})")
        if mine:
            check(bool(nonzero.match(mine[0]["rx"]) and nonzero.match(mine[0]["tx"])),
                  f"non-zero rates shown: rx {mine[0]['rx']}, tx {mine[0]['tx']}")
        hits = [x for x in seen.get("alerts", []) if a.alert in x]
        check(bool(hits), f"{a.alert} alert shown: {hits[:2] or seen.get('alerts')}")
        check(seen.get("flows", 0) > 0 and seen.get("nodes", 0) >= 2,
              f"busiest flows ({seen.get('flows')} rows) and topology ({seen.get('nodes')} nodes, {seen.get('edges')} edges)")
        print(f"  page showed all of it {took:.1f} s after loading", flush=True)
        b.pump(a.settle)  # the charts take a few more points
        b.screenshot(a.screenshot)
        var, colours = blankness(b.screenshot(None, scale=0.25))
        check(var > 100 and colours > 50,
              f"screenshot not blank: luminance variance {var:.0f}, {colours} colours at 1/4 scale ({a.screenshot})")
        errors = b.errors()
        check(not errors, "no console error or exception" + (": " + "; ".join(errors[:5]) if errors else ""))

        if a.stop_pid:
            os.kill(a.stop_pid, signal.SIGTERM)
            t1 = time.monotonic()
            while time.monotonic() - t1 < 15:
                b.pump(0.3)
                seen = b.eval(PROBE)
                if seen["stale"]:
                    break
            stale_png = re.sub(r"\.png$", "", a.screenshot) + "-stale.png"
            b.screenshot(stale_png)
            check(seen["stale"] and re.fullmatch(r"stale since \d\d:\d\d:\d\d", seen["state"]) is not None,
                  f"agent stopped: '{seen['state']}' after {time.monotonic() - t1:.1f} s ({stale_png})")
            check(seen["liveDigits"] == 0,
                  f"no frozen numbers: {seen['liveDigits']} of {seen['values']} live values still show digits; banner: {seen['banner'][:90]}")
    finally:
        b.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

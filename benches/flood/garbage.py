#!/usr/bin/env python3
"""Random well-shaped v2 names: a valid name with every frame byte after the
header (format, key id; KEEP bytes) replaced by random bytes, labels of the
same lengths. Usage: garbage.py NAME ZONE COUNT > FILE (dnsperf lines)."""
import base64, os, sys

name, zone, count = sys.argv[1], sys.argv[2].rstrip("."), int(sys.argv[3])
keep = int(os.environ.get("KEEP", "2"))
labels = name.rstrip(".")[: -len(zone) - 1].split(".")
lens = [len(l) for l in labels]
text = "".join(labels).upper()
pad = "=" * (-len(text) % 8)
frame = base64.b32decode(text + pad)
head, n = frame[:keep], len(frame) - keep
out = sys.stdout
buf = []
for _ in range(count):
    f = head + os.urandom(n)
    t = base64.b32encode(f).decode().rstrip("=").lower()
    parts, at = [], 0
    for l in lens:
        parts.append(t[at : at + l])
        at += l
    buf.append(".".join(parts) + "." + zone + ". TXT\n")
    if len(buf) >= 10000:
        out.write("".join(buf))
        buf = []
out.write("".join(buf))

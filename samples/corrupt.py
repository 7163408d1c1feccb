#!/usr/bin/env python3
"""Overwrites the audio packets of a media file whose timestamps fall in [FROM, TO) seconds with
seeded random bytes, leaving the container intact: the decoder fails on them (or decodes noise),
as on a damaged recording.

    python3 samples/corrupt.py IN OUT FROM TO [--seed N]

Packet positions and sizes come from ffprobe. Prints how many packets (and bytes) were
overwritten.
"""
import argparse
import random
import shutil
import subprocess


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("start", type=float)
    ap.add_argument("end", type=float)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "packet=pts_time,pos,size",
         "-of", "csv=p=0", args.src],
        check=True, capture_output=True, text=True).stdout
    rng = random.Random(args.seed)
    shutil.copyfile(args.src, args.dst)
    n = size_total = 0
    with open(args.dst, "r+b") as f:
        for line in out.splitlines():
            parts = line.strip().strip(",").split(",")
            if len(parts) < 3 or "N/A" in parts:
                continue
            pts, size, pos = float(parts[0]), int(parts[1]), int(parts[2])
            if args.start <= pts < args.end:
                f.seek(pos)
                f.write(bytes(rng.randrange(256) for _ in range(size)))
                n += 1
                size_total += size
    print(f"{args.dst}: {n} audio packets ({size_total} bytes) overwritten")


if __name__ == "__main__":
    main()

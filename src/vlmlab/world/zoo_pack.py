"""A zoo pack: a built zoo's four named backbones as committed files, so a new machine need not pretrain them again.

    python -m vlmlab.world.zoo_pack pack --scale large      # after `make backbones-large`: -> results/zoo_large/
    python -m vlmlab.world.zoo_pack unpack --scale large    # `make zoo-large`: results/zoo_large/ -> the cache

The large zoo takes ~2.8 h of this 2-core machine to pretrain (world/zoo_specs.py), and a machine here is not kept
from one session to the next: every later step of the scale transfer (calibration, pilot, runs) would begin with
that build. A pack holds what those steps load, the named pairs (lm_weak, lm_strong, vision_weak, vision_strong:
weights, configs, tokenizer, image processor, their manifests) and the zoo's manifest, with a SHA256SUMS file.
`unpack` checks every file against it and against this code's generator version of the scale before it lays the pack out where
`zoo.ensure("large/lm_strong")` finds it; checkpoints other than the named four (`large/lm@1000`) still need the
build. A pack is also what keeps a study's backbones fixed: the build is deterministic on one machine and package
set (1 and 2 threads gave the LM the same bits), but a rebuild on a new machine here gave other bits from the
first checkpoint on (session 15; perf.SOFTWARE), so the manifest records what built it (`software`) beside the
scores a rebuild can be held to.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from pathlib import Path

from vlmlab.paths import repo_root
from vlmlab.world.config import generator_version
from vlmlab.world.zoo import NAMES, SCALES, finished, zoo_dir

SUMS = "SHA256SUMS"


def default_pack_dir(scale: str) -> Path:
    return repo_root() / "results" / f"zoo_{scale}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.name != SUMS)


def pack(scale: str = "base", dest: Path | None = None, mini: bool = False) -> Path:
    """Copy the built zoo's named backbones and manifest into dest, with every file's SHA-256 in dest/SHA256SUMS."""
    src, dest = zoo_dir(mini, scale), Path(dest or default_pack_dir(scale))
    missing = [n for n in NAMES if not finished(src / n, generator_version(scale))]
    if missing or not (src / "manifest.json").exists():
        raise FileNotFoundError(f"the {scale} zoo at {src} is not built ({', '.join(missing) or 'manifest.json'} "
                                f"missing); build it first (python -m vlmlab.world.zoo build --scale {scale})")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in NAMES:
        shutil.copytree(src / name, tmp / name)
    shutil.copy2(src / "manifest.json", tmp / "manifest.json")
    (tmp / SUMS).write_text("".join(f"{_sha256(tmp / f)}  {f.as_posix()}\n" for f in _files(tmp)))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def verify(pack_dir: Path, scale: str = "base") -> dict[str, str]:
    """The pack's files and hashes, after checking each file, that none is missing or extra, and that its world is
    the scale's (generator_version)."""
    pack_dir = Path(pack_dir)
    sums_file = pack_dir / SUMS
    if not sums_file.exists():
        raise FileNotFoundError(f"{sums_file} is missing: {pack_dir} is no zoo pack")
    sums = {}
    for line in sums_file.read_text().splitlines():
        digest, name = line.split("  ", 1)
        sums[name] = digest
    present = {f.as_posix() for f in _files(pack_dir)}
    if present != set(sums):
        raise ValueError(f"{pack_dir}: files {sorted(present ^ set(sums))} differ from {SUMS}'s list")
    bad = [name for name, digest in sums.items() if _sha256(pack_dir / name) != digest]
    if bad:
        raise ValueError(f"{pack_dir}: {bad} do not match their SHA-256 in {SUMS} (a changed or truncated file)")
    version = json.loads((pack_dir / "manifest.json").read_text()).get("generator_version")
    if version != generator_version(scale):
        raise ValueError(f"{pack_dir} holds a zoo of world {version!r}, not this code's {generator_version(scale)!r} "
                         f"at scale {scale}: rebuild it (python -m vlmlab.world.zoo build --scale {scale}) and pack it "
                         f"again")
    return sums


def unpack(scale: str = "base", src: Path | None = None, mini: bool = False) -> Path:
    """Lay a verified pack out in the cache where zoo.ensure finds its named backbones; built ones are left alone."""
    src = Path(src or default_pack_dir(scale))
    verify(src, scale)
    root = zoo_dir(mini, scale)
    root.mkdir(parents=True, exist_ok=True)
    for name in NAMES:
        if finished(root / name, generator_version(scale)):
            continue
        tmp = root / f"{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src / name, tmp)
        shutil.rmtree(root / name, ignore_errors=True)
        tmp.rename(root / name)
    if not (root / "manifest.json").exists():
        shutil.copy2(src / "manifest.json", root / "manifest.json")
    return root


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m vlmlab.world.zoo_pack", description=__doc__.split("\n")[0])
    ap.add_argument("cmd", choices=("pack", "unpack", "verify"))
    ap.add_argument("--scale", choices=SCALES, default="large")
    ap.add_argument("--dir", type=Path, default=None, help="the pack (default results/zoo_<scale>)")
    args = ap.parse_args(argv)
    where = args.dir or default_pack_dir(args.scale)
    if args.cmd == "pack":
        print(f"[zoo_pack] packed the {args.scale} zoo into {pack(args.scale, where)}")
    elif args.cmd == "unpack":
        print(f"[zoo_pack] {where} -> {unpack(args.scale, where)}")
    else:
        print(f"[zoo_pack] {where}: {len(verify(where, args.scale))} files match {SUMS} and world "
              f"{generator_version(args.scale)}")


if __name__ == "__main__":
    main()

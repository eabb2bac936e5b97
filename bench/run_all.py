"""Run every benchmark in bench/ (``./run bench``), or the ones named: ``./run bench analytic``.

Each ``bench_<name>.py`` has ``main(argv) -> int``, prints a Markdown table and writes
``bench/results/<name>.json`` with the machine it ran on. Speed is measured here, not in tests.
"""
from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks in turn; non-zero if any failed."""
    names = list(argv if argv is not None else sys.argv[1:])
    benches = sorted(HERE.glob("bench_*.py"))
    if names:
        benches = [b for b in benches if b.stem.removeprefix("bench_") in names]
        if not benches:
            print(f"no benchmark named {', '.join(names)}; have: "
                  f"{', '.join(b.stem.removeprefix('bench_') for b in sorted(HERE.glob('bench_*.py')))}")
            return 2
    failed = 0
    for path in benches:
        print(f"\n## {path.stem}\n", flush=True)
        start = time.perf_counter()
        code = _load(path).main([])
        print(f"\n({path.stem}: {time.perf_counter() - start:.1f} s, exit {code})", flush=True)
        failed += bool(code)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

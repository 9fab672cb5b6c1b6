"""
Run every benchmark module that exists, one after another.

Each module has a ``main()`` that prints its own table. Name some modules to
run only those.

Example:
    .venv/bin/python -m bench            # sync, query and API benchmarks
    .venv/bin/python -m bench sync_bench
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
import traceback

MODULES = ("sync_bench", "query_bench", "api_bench")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen (or all present) benchmark modules; return 1 if any failed."""
    names = list(sys.argv[1:] if argv is None else argv) or list(MODULES)
    unknown = sorted(set(names) - set(MODULES))
    if unknown:
        print(
            f"unknown benchmarks {unknown}; choose from {list(MODULES)}",
            file=sys.stderr,
        )
        return 2

    failed = []
    for name in names:
        module_name = f"{__package__ or 'bench'}.{name}"
        if importlib.util.find_spec(module_name) is None:
            print(f"bench: {name} is not written yet; skipped", file=sys.stderr)
            continue
        started = time.monotonic()
        print(f"bench: {name}", file=sys.stderr, flush=True)
        # Each main() parses sys.argv itself: give it none of ours.
        sys.argv = [f"python -m {module_name}"]
        try:
            status = importlib.import_module(module_name).main()
        except Exception:
            # One broken benchmark must not hide the others' tables.
            traceback.print_exc()
            status = 1
        if status:
            failed.append(name)
        print(flush=True)
        seconds = time.monotonic() - started
        print(f"bench: {name} finished in {seconds:.0f}s", file=sys.stderr, flush=True)

    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

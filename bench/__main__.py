"""``make bench``: run every benchmark module in its own process, then print results.json."""

import json
import subprocess
import sys
from pathlib import Path

from bench.results import RESULTS, table

here = Path(__file__).parent
failed = []
for script in sorted(here.glob("*.py")):
    if script.stem in ("__init__", "__main__", "results"):
        continue
    print(f"\n=== {script.stem} ===", flush=True)
    if subprocess.run([sys.executable, "-m", f"bench.{script.stem}"], cwd=here.parent).returncode:
        failed.append(script.stem)
if RESULTS.exists():
    rows = [(e["name"], f'{e["value"]:.4g} {e["unit"]}', e["peer"], f'{e["peer_value"]:.4g}', f'{e["ratio"]:.2f}')
            for e in json.loads(RESULTS.read_text())]
    print("\n" + table(rows, ("figure", "value", "measured against", "peer value", "ratio")))
sys.exit(1 if failed else 0)

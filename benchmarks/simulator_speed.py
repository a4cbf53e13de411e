"""How fast the simulator renders cells (a figure, not a test).

    python benchmarks/simulator_speed.py [--cells 400] [--style default|alt]
"""

import argparse
import time

from napari_organelle.phantoms import simulate_dataset

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--cells", type=int, default=400)
ap.add_argument("--style", default="default")
a = ap.parse_args()
t0 = time.perf_counter()
data = simulate_dataset(max(1, a.cells // 10), seed=0, style=a.style)
dt = time.perf_counter() - t0
print(f"{len(data)} simulated cells (382x382, protein + DNA, style={a.style}) in {dt:.1f} s "
      f"({1000 * dt / len(data):.0f} ms per cell)")

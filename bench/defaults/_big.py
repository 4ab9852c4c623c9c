import sys
sys.argv.append("--x")
sys.path.insert(0, "bench/defaults")
from llc_defaults import run
for gamma in (100.0, 1.0):
    run([10] * 4, 5, 1000, gamma, 8, 1000)

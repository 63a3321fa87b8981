#!/usr/bin/env bash
# Scaling of MMoE on census over ranks and threads: samples/s at 1 rank x 1
# thread, 1 rank x 2 threads and 2 ranks x 1 thread, with the share of a step
# spent in the gradient allreduce (launch/bench.sh, MMoE only).
#   bash launch/bench-scaling.sh [--quick] [--build DIR]
exec bash "$(dirname "$0")/bench.sh" --models mmoe --no-production "$@"

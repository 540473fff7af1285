"""`make bench`: the pipeline's speed and cost beside their ceilings, in one run (see docs/benchmarks.md)."""

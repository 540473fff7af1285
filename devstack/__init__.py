"""The local stack: a local AWS (moto, or ElasticMQ + gofakes3 + moto), the bootstrap of its resources and both
services, on 127.0.0.1.

Used by `make run` (`python -m devstack`), `make objects` (`python -m devstack.objects`), the benchmark, the soak
and the integration and end-to-end tests. Besides the stack (stack.DevStack) it holds what those share: where the
external tools live (tools), the accounting of a run (accounting: Ledger, verify) and its well-behaved client
(sender), and the reading of a /metrics page (metrics_text).
"""

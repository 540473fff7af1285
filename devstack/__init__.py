"""The local stack: an AWS emulator, the bootstrap of its resources and both services, on 127.0.0.1.

Used by `make run` (`python -m devstack`) and by the integration and end-to-end tests.
"""

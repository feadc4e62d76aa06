"""Client for mleb: MLE-bench as gRPC services.

Generated stubs live in `mleb.<area>.v1`; the typed client is `mleb.client`.
"""

__version__ = "0.1.0"

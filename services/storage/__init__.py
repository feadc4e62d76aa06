"""Object storage: the local filesystem by default, S3-compatible storage for a deployment of
several nodes or replicas (docs/deploy.md#object-storage)."""

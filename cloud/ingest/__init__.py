"""The cloud's ingest of station batches (docs/cloud.md, "Ingest modules"): `Ingestor` applies one batch per
transaction. Orchestration in batch.py, the batch's state in context.py, the storage seam in store.py,
finding rows in find.py, and the domain effects in lockers.py, parcels.py, codes.py and records.py."""

from .batch import Ingestor

__all__ = ["Ingestor"]

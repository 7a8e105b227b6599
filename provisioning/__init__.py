"""Manufacturer tooling for the factory host: PKI, device identities, setup codes, bundles,
batches, revocation, broker files and flashing (docs/manufacturing.md).
"""

"""Manufacturer tooling for the factory host: PKI, device identities, bundles, release signing.

Empty until the provisioning issue; the package exists so the layout and type checks
cover it from the start.
"""

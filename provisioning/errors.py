"""Every error the provisioning tools raise, in one hierarchy.

str() of each is the one paragraph the operator reads: what was given, what was
expected, and what to do. The CLI turns any of them into exit code 2. All are
WichtelErrors; BundleError is the device's own (agent/bundle.py), raised here too.
"""

from agent.bundle import BundleError as BundleError  # the device's check and the factory's share it
from agent.core.errors import WichtelError


class ProvisioningError(WichtelError):
    """Input the factory tools cannot use; nothing half-written is left behind."""


class SerialError(ProvisioningError):
    """A serial number that is not valid, or one given twice."""


class IdentityError(ProvisioningError):
    """A device id or service name outside its grammar, or a certificate asked of the wrong CA."""


class AuthorityError(ProvisioningError):
    """The manufacturer's PKI directory is missing, damaged, expired or not one chain."""


class PassphraseError(ProvisioningError):
    """A passphrase that is missing, empty, or does not open the key."""


class BatchError(ProvisioningError):
    """An output directory that holds a different batch, or a batch that cannot go on."""


class DiskFullError(BatchError):
    """The output disk filled up in the middle of a batch."""


class FlashError(ProvisioningError):
    """No board, no mpremote, or a copy to the board that failed."""


class FirmwareBuildError(ProvisioningError):
    """A firmware image that cannot be built: no entry point, a module mpy-cross refuses, a
    host adapter imported by board code, or no mpy-cross."""

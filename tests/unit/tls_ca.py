"""The TLS tests' throwaway CA (:class:`lab.pki.Ca`) and the bundles they share."""

import functools

from lab.pki import Ca

__all__ = ["Ca", "shared_ca"]


@functools.cache
def shared_ca():
    """One CA and its bundles for a test session."""
    ca = Ca()
    ca.shop = ca.bundle("shop.example.net", ("shop.example.net", "www.shop.example.net"))
    ca.api = ca.bundle("api.shop.example.net", ("api.shop.example.net",))
    ca.renewed = ca.bundle("shop.example.net", ("shop.example.net", "www.shop.example.net"), days=180)
    return ca

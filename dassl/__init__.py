"""Our own implementation of the part of Dassl.pytorch 0.6.3 that CoOp-family code uses.

See docs/dassl.md for what differs from upstream and why. Sub-packages are imported
on demand (``from dassl.engine import ...``) so that importing ``dassl`` stays cheap.
"""

__version__ = "0.6.3"
